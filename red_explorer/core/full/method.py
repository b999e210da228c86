"""Full fine-tuning as an entry of the method registry: every weight trains; a run is a whole model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from red_explorer.core.checkpoint import EditsFileError
from red_explorer.core.method import Method


@dataclass
class FullOptions:
    """Full fine-tuning has no settings of its own."""


class Full(Method):
    name = "full"
    title = "full fine-tuning"
    options = FullOptions
    # best of the measured sweep (benchmarks/method_choice/pirate_style, SmolLM2-135M)
    default_learning_rate = 1.5e-4
    saves_whole_model = True
    quantized_base_refusal = "it updates every weight, and quantized weights do not train"

    def label(self, options: FullOptions) -> str:
        return "full fine-tuning"

    def attach(self, model: nn.Module, options: FullOptions, task: str, head_parameter_names=()) -> nn.Module:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model

    def parameter_count(self, model: nn.Module) -> int:
        return sum(parameter.numel() for parameter in model.parameters())

    def save(self, model: nn.Module, directory: Path, base_model: str | None, head_parameter_names) -> Path:
        model.save_pretrained(directory)
        return directory

    def holds(self, directory: Path) -> bool:
        return (directory / "config.json").is_file()

    def load(self, model: nn.Module, directory: Path) -> tuple[nn.Module, FullOptions]:
        raise EditsFileError(f"{directory} is a full model checkpoint: load it as the model, not as edits")

    def merge_and_unload(self, model: nn.Module) -> nn.Module:
        return model
