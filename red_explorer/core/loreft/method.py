"""LoReFT as an entry of the method registry: h + Rᵀ(W h + b − R h) at the first and last prompt tokens."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from red_explorer.core.checkpoint import CONFIG_FILE, read_record
from red_explorer.core.loreft.config import LoreftOptions
from red_explorer.core.loreft.edit import attach_loreft, detach_loreft, loreft_disabled, loreft_parameter_count
from red_explorer.core.loreft.saving import load_loreft, save_loreft
from red_explorer.core.method import MergeError, Method


class Loreft(Method):
    """LoReFT (Wu et al. 2024, ReFT): h' = h + Rᵀ(W h + b − R h) on the residual stream, at chosen positions.

    R (r, H) has orthonormal rows, W (r, H) and b (r,) are free; one intervention per edited layer,
    shared by the first ``first`` and the last ``last`` prompt tokens (ReFT's tied weights); other
    positions, and the tokens generated after the prompt, are not edited. The model is frozen.
    See ``red_explorer.core.loreft.edit`` for exactly which positions a forward pass edits.
    """

    name = "loreft"
    title = "LoReFT"
    options = LoreftOptions
    # ReFT's reference runs (pyreft examples/loreft: LLaMA-7B commonsense and math, rank 8, f7+l7, all layers).
    # best of the measured sweep (benchmarks/method_choice/pirate_style, SmolLM2-135M)
    default_learning_rate = 8.1e-3

    def label(self, options: LoreftOptions) -> str:
        return f"LoReFT r={options.rank} {options.positions} ({options.site})"

    def attach(self, model: nn.Module, options: LoreftOptions, task: str, head_parameter_names=()) -> nn.Module:
        attach_loreft(model, options)
        return model

    def parameter_count(self, model: nn.Module) -> int:
        return loreft_parameter_count(model)

    def disabled(self, model: nn.Module):
        return loreft_disabled(model)

    def detach(self, model: nn.Module) -> nn.Module:
        detach_loreft(model)
        return model

    def save(self, model: nn.Module, directory: Path, base_model: str | None, head_parameter_names) -> Path:
        return save_loreft(model, directory, base_model, head_parameter_names)

    def holds(self, directory: Path) -> bool:
        return (directory / CONFIG_FILE).is_file() and read_record(directory).get("method") == "loreft"

    def load_in_place(self, model: nn.Module, directory: Path) -> LoreftOptions:
        return load_loreft(model, directory)

    def load(self, model: nn.Module, directory: Path) -> tuple[nn.Module, LoreftOptions]:
        return model, load_loreft(model, directory)

    def merge_and_unload(self, model: nn.Module) -> nn.Module:
        raise MergeError(
            "LoReFT cannot be merged into the weights: it edits only the first and last prompt tokens, and "
            "which tokens those are changes with every input (and the generated tokens are never edited), "
            "so no fixed weight matrix computes it. Keep the edits folder and attach it at load time "
            "(load_edits) instead."
        )
