"""TARE as an entry of the method registry: a per-token top-k mix of diagonal editors after each site."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from red_explorer.core.checkpoint import CONFIG_FILE, read_record
from red_explorer.core.layer_ranges import layers_suffix
from red_explorer.core.method import MergeError, Method
from red_explorer.core.tare.config import TareConfig
from red_explorer.core.tare.edit import attach_tare, detach_tare, tare_disabled, tare_parameter_count
from red_explorer.core.tare.saving import load_tare, save_tare


class Tare(Method):
    name = "tare"
    title = "TARE"
    options = TareConfig
    # best of the measured sweep (benchmarks/method_choice/pirate_style, SmolLM2-135M)
    default_learning_rate = 3e-2

    def label(self, options: TareConfig) -> str:
        return (
            f"TARE E={options.num_editors} k={options.top_k} ({'+'.join(options.sites)}){layers_suffix(options.layers)}"
        )

    def attach(self, model: nn.Module, options: TareConfig, task: str, head_parameter_names=()) -> nn.Module:
        attach_tare(model, options)
        return model

    def parameter_count(self, model: nn.Module) -> int:
        return tare_parameter_count(model)

    def disabled(self, model: nn.Module):
        return tare_disabled(model)

    def detach(self, model: nn.Module) -> nn.Module:
        detach_tare(model)
        return model

    def save(self, model: nn.Module, directory: Path, base_model: str | None, head_parameter_names) -> Path:
        return save_tare(model, directory, base_model, head_parameter_names)

    def holds(self, directory: Path) -> bool:
        return (directory / CONFIG_FILE).is_file() and read_record(directory).get("method") == "tare"

    def load_in_place(self, model: nn.Module, directory: Path) -> TareConfig:
        return load_tare(model, directory)

    def load(self, model: nn.Module, directory: Path) -> tuple[nn.Module, TareConfig]:
        return model, load_tare(model, directory)

    def merge_and_unload(self, model: nn.Module) -> nn.Module:
        raise MergeError(
            "TARE edits cannot be merged into the weights: each token is routed to its own mix of editors, "
            "so the edit depends on the token and no fixed W' = diag(scale)·W exists. Keep the edits "
            "folder and attach it at load time (load_edits) instead."
        )
