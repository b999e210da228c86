"""DoRA (through PEFT) as an entry of the method registry: LoRA's direction with a learned magnitude per output."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from red_explorer.core.adapters import PeftAdapter, listed


@dataclass
class DoraOptions:
    """The rank, scaling and targets of the low-rank direction update (the magnitude vector always trains)."""

    rank: int = field(default=8, metadata={"help": "r: rank of B·A"})
    alpha: int = field(default=16, metadata={"help": "scaling numerator: the update is (alpha / r) · B·A"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the low-rank input"})
    target_modules: str | list[str] | None = field(
        default=None, metadata={"help": "None: PEFT's LoRA projections for this family"}
    )

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"DoRA rank must be a positive integer, got {self.rank!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) or self.alpha <= 0:
            raise ValueError(f"DoRA alpha must be a positive number (16 = twice the default rank), got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DoRA dropout must be in [0, 1), got {self.dropout!r}")


class Dora(PeftAdapter):
    """DoRA: y = m ⊙ (V x) / ‖V‖_row with V = W + (alpha / r) · B·A.

    W (out, in) is frozen; A (r, in), B (out, r) and the magnitude m (out,) train; ‖V‖_row is the L2
    norm of each output row of V, taken as a constant in the backward pass (as in the paper and PEFT).
    m starts at ‖W‖_row and B at zero, so the adapter starts as the identity. Merging writes
    W' = m ⊙ V / ‖V‖_row into the weight.
    """

    name = "dora"
    title = "DoRA"
    options = DoraOptions
    marker = "lora_"  # lora_A, lora_B and lora_magnitude_vector
    # PEFT's method comparison (Llama-3.2-3B on MetaMathQA, method_comparison/): DoRA r=32 at 1e-4 (46.9 % GSM8K).
    # best of the measured sweep (benchmarks/method_choice/pirate_style, SmolLM2-135M, 8 steps)
    default_learning_rate = 3e-4

    def label(self, options: DoraOptions) -> str:
        return f"DoRA r={options.rank}"

    def peft_config(self, model: nn.Module, options: DoraOptions, task_type: str, heads: list[str] | None):
        from peft import LoraConfig

        return LoraConfig(
            r=options.rank,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            target_modules=options.target_modules,
            use_dora=True,
            task_type=task_type,
            modules_to_save=heads,
        )

    def options_from(self, adapter: dict) -> DoraOptions:
        return DoraOptions(
            rank=adapter.get("r", 8),
            alpha=adapter.get("lora_alpha", 16),
            dropout=adapter.get("lora_dropout", 0.0),
            target_modules=listed(adapter.get("target_modules")),
        )
