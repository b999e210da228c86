"""DoRA (through PEFT) as an entry of the method registry: LoRA's direction with a learned magnitude per output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from red_explorer.core.lora.method import Lora, LoraOptions


@dataclass
class DoraOptions(LoraOptions):
    """LoRA's rank, scaling and targets for the direction update (the magnitude vector always trains)."""

    method: ClassVar[str] = "DoRA"


class Dora(Lora):
    """DoRA: y = m ⊙ (V x) / ‖V‖_row with V = W + (alpha / r) · B·A.

    W (out, in) is frozen; A (r, in), B (out, r) and the magnitude m (out,) train; ‖V‖_row is the L2
    norm of each output row of V, taken as a constant in the backward pass (as in the paper and PEFT).
    m starts at ‖W‖_row and B at zero, so the adapter starts as the identity. Merging writes
    W' = m ⊙ V / ‖V‖_row into the weight.
    """

    name = "dora"
    title = "DoRA"
    options = DoraOptions
    use_dora = True  # lora_A, lora_B and lora_magnitude_vector
    # PEFT's method comparison (Llama-3.2-3B on MetaMathQA, method_comparison/): DoRA r=32 at 1e-4 (46.9 % GSM8K).
    # best of the measured sweep and its check above the grid (benchmarks/method_choice/pirate_style, SmolLM2-135M)
    default_learning_rate = 9e-3
