"""LoRA (through PEFT) as an entry of the method registry: W' = W + (alpha / r) · B · A on chosen projections."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from red_explorer.core.adapters import adapter_kind, head_modules
from red_explorer.core.method import Method

ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class LoraOptions:
    """The rank, scaling and targets of the low-rank update."""

    rank: int = field(default=8, metadata={"help": "r: rank of B·A"})
    alpha: int = field(default=16, metadata={"help": "scaling numerator: the update is (alpha / r) · B·A"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA input"})
    target_modules: str | list[str] | None = field(
        default=None, metadata={"help": "None: PEFT's attention projections for this family"}
    )

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"LoRA rank must be a positive integer, got {self.rank!r}")


class Lora(Method):
    name = "lora"
    title = "LoRA"
    options = LoraOptions
    default_learning_rate = 3e-4

    def label(self, options: LoraOptions) -> str:
        return f"LoRA r={options.rank}"

    def attach(self, model: nn.Module, options: LoraOptions, task: str, head_parameter_names=()) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=options.rank,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            target_modules=options.target_modules,
            task_type="SEQ_CLS" if task == "classification" else "CAUSAL_LM",
            modules_to_save=head_modules(head_parameter_names),
        )
        return get_peft_model(model, config)

    def parameter_count(self, model: nn.Module) -> int:
        return sum(parameter.numel() for name, parameter in model.named_parameters() if "lora_" in name)

    def disabled(self, model: nn.Module):
        return model.disable_adapter()

    def detach(self, model: nn.Module) -> nn.Module:
        return model.unload()

    def save(self, model: nn.Module, directory: Path, base_model: str | None, head_parameter_names) -> Path:
        if base_model:
            model.peft_config["default"].base_model_name_or_path = base_model
        model.save_pretrained(directory)
        return directory

    def holds(self, directory: Path) -> bool:
        return adapter_kind(directory) == "lora"  # not DoRA, IA3 or LN tuning, which also write adapter_config.json

    def load(self, model: nn.Module, directory: Path) -> tuple[nn.Module, LoraOptions]:
        from peft import PeftModel

        adapter = json.loads((directory / ADAPTER_CONFIG).read_text())
        options = LoraOptions(rank=adapter.get("r", 8), alpha=adapter.get("lora_alpha", 16))
        return PeftModel.from_pretrained(model, str(directory)).eval(), options

    def merge_and_unload(self, model: nn.Module) -> nn.Module:
        return copy.deepcopy(model).merge_and_unload()
