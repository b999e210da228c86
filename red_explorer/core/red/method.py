"""RED as an entry of the method registry: h' = scale ⊙ h + bias after each chosen site."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from red_explorer.core.checkpoint import CONFIG_FILE, read_record
from red_explorer.core.layer_ranges import layers_suffix
from red_explorer.core.method import Method
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, detach_red, red_disabled, red_parameter_count
from red_explorer.core.red.merge import merge_and_unload
from red_explorer.core.red.saving import load_red, save_red


@dataclass
class RedOptions:
    """Which RED vectors to learn and where."""

    variant: str = field(default="full", metadata={"help": "full (scale and bias) | scale | bias"})
    sites: list[str] = field(default_factory=lambda: ["ffn"], metadata={"help": "ffn, attn or both"})
    layers: list[int] | None = field(default=None, metadata={"help": "layer indices to edit; None = all"})
    target_modules: str | list[str] | None = field(default=None, metadata={"help": "regex or module names"})

    def __post_init__(self) -> None:
        config = self.red_config()  # validates variant, sites, layers
        self.sites, self.layers = config.sites, config.layers

    def red_config(self) -> RedConfig:
        return RedConfig.from_variant(
            self.variant, sites=self.sites, layers=self.layers, target_modules=self.target_modules
        )


class Red(Method):
    name = "red"
    title = "RED"
    options = RedOptions
    # best of the measured sweep (benchmarks/method_choice/pirate_style, SmolLM2-135M)
    default_learning_rate = 3e-2

    def label(self, options: RedOptions) -> str:
        return f"RED {options.variant} ({'+'.join(options.sites)}){layers_suffix(options.layers)}"

    def attach(self, model: nn.Module, options: RedOptions, task: str, head_parameter_names=()) -> nn.Module:
        attach_red(model, options.red_config())
        return model

    def parameter_count(self, model: nn.Module) -> int:
        return red_parameter_count(model)

    def disabled(self, model: nn.Module):
        return red_disabled(model)

    def detach(self, model: nn.Module) -> nn.Module:
        detach_red(model)
        return model

    def save(self, model: nn.Module, directory: Path, base_model: str | None, head_parameter_names) -> Path:
        return save_red(model, directory, base_model, head_parameter_names)

    def holds(self, directory: Path) -> bool:
        return (directory / CONFIG_FILE).is_file() and read_record(directory).get("method", "red") == "red"

    def load_in_place(self, model: nn.Module, directory: Path) -> RedConfig:
        return load_red(model, directory)

    def load(self, model: nn.Module, directory: Path) -> tuple[nn.Module, RedOptions]:
        config = load_red(model, directory)
        options = RedOptions(config.variant, config.sites, config.layers, config.target_modules)
        return model, options

    def merge_and_unload(self, model: nn.Module) -> nn.Module:
        return merge_and_unload(model)
