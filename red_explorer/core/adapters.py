"""What the PEFT-backed registry entries share: telling adapter folders apart, wrapping, switching off, merging."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from torch import nn

from red_explorer.core.method import Method
from red_explorer.models.quantization import is_quantized

ADAPTER_CONFIG = "adapter_config.json"
PEFT_KINDS = {"IA3": "ia3", "LN_TUNING": "lntuning"}  # PEFT's peft_type -> registry name (LORA: lora or dora)


def read_adapter_config(directory: str | Path) -> dict | None:
    """The parsed ``adapter_config.json`` of a folder, or None when there is none (or it is not a JSON object)."""
    path = Path(directory) / ADAPTER_CONFIG
    if not path.is_file():
        return None
    try:
        adapter = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return adapter if isinstance(adapter, dict) else None


def kind_of(adapter: dict) -> str:
    """The registry name of a PEFT adapter config: 'lora', 'dora', 'ia3', 'lntuning' (else its peft_type, lowered)."""
    peft_type = adapter.get("peft_type") or "LORA"
    peft_type = str(getattr(peft_type, "value", peft_type)).upper()  # an enum in a live config, a string on disk
    if peft_type == "LORA":
        return "dora" if adapter.get("use_dora") else "lora"
    return PEFT_KINDS.get(peft_type, peft_type.lower())


def adapter_kind(directory: str | Path) -> str | None:
    """Which PEFT method a folder holds (every PEFT adapter writes adapter_config.json), or None."""
    adapter = read_adapter_config(directory)
    return None if adapter is None else kind_of(adapter)


def model_adapter_kind(model: nn.Module) -> str | None:
    """Which PEFT method wraps ``model`` (its active adapter), or None for a model PEFT does not wrap."""
    configs = getattr(model, "peft_config", None)
    if not configs:
        return None
    config = configs.get(getattr(model, "active_adapter", "default")) or next(iter(configs.values()))
    return kind_of(config.to_dict())


def head_modules(head_parameter_names) -> list[str] | None:
    """The modules holding a new classification head ('classifier', 'bert.pooler.dense'), for ``modules_to_save``."""
    return sorted({name.rpartition(".")[0] for name in head_parameter_names}) or None


def task_type(task: str) -> str:
    return "SEQ_CLS" if task == "classification" else "CAUSAL_LM"


def listed(names):
    """Module names as saved in adapter_config.json (PEFT writes a set as a list): a sorted list, a regex, or None."""
    return sorted(names) if isinstance(names, list | tuple | set) else names


class PeftAdapter(Method):
    """A method PEFT implements: a subclass builds its PEFT config and reads its options back from one.

    The wrapper PEFT returns is the model to train; a classification head trains and saves through
    ``modules_to_save``. Switching off, removing, saving and merging are PEFT's own.
    """

    marker: str  # a substring of the names of the parameters the adapter adds

    def peft_config(self, model: nn.Module, options, task_type: str, heads: list[str] | None):
        raise NotImplementedError

    def options_from(self, adapter: dict):
        """The options an adapter_config.json records."""
        raise NotImplementedError

    def attach(self, model: nn.Module, options, task: str, head_parameter_names=()) -> nn.Module:
        from peft import get_peft_model, prepare_model_for_kbit_training

        if is_quantized(model):  # QLoRA: PEFT readies a quantized base (fp32 norms, input gradients)
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        config = self.peft_config(model, options, task_type(task), head_modules(head_parameter_names))
        return get_peft_model(model, config)

    def parameter_count(self, model: nn.Module) -> int:
        return sum(parameter.numel() for name, parameter in model.named_parameters() if self.marker in name)

    def disabled(self, model: nn.Module):
        return model.disable_adapter()

    def detach(self, model: nn.Module) -> nn.Module:
        return model.unload()

    def save(self, model: nn.Module, directory: Path, base_model: str | None, head_parameter_names) -> Path:
        if base_model:
            model.peft_config["default"].base_model_name_or_path = base_model
        # embeddings are never trained here, and "auto" would ask the hub for the base's config to find out
        model.save_pretrained(directory, save_embedding_layers=False)
        return directory

    def holds(self, directory: Path) -> bool:
        return adapter_kind(directory) == self.name

    def load(self, model: nn.Module, directory: Path):
        from peft import PeftModel

        options = self.options_from(read_adapter_config(directory))
        return PeftModel.from_pretrained(model, str(directory)).eval(), options

    def merge_and_unload(self, model: nn.Module) -> nn.Module:
        return copy.deepcopy(model).merge_and_unload()
