"""One interface over the fine-tuning methods: RED, TARE, LoRA (through PEFT) and full fine-tuning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import nn

from .config import RedConfig
from .edit import attach_red, red_disabled
from .saving import CONFIG_FILE, EditsFileError, load_edits, read_edits_config, save_edits

METHODS = ("red", "tare", "lora", "full")
DEFAULT_LEARNING_RATES = {"red": 1e-2, "tare": 1e-2, "lora": 3e-4, "full": 5e-5}


@dataclass
class MethodSpec:
    """One way of fine-tuning: a row of an ablation, a choice in the app, a --method on the CLI."""

    method: str = field(default="red", metadata={"help": "red | tare | lora | full"})
    variant: str = field(default="full", metadata={"help": "RED vectors: full | scale | bias"})
    sites: list[str] = field(default_factory=lambda: ["ffn"], metadata={"help": "RED/TARE sites: ffn, attn"})
    layers: list[int] | None = field(default=None, metadata={"help": "RED/TARE layer subset"})
    target_modules: str | list[str] | None = field(default=None, metadata={"help": "RED/TARE/LoRA override"})
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    tare_editors: int = 4
    tare_top_k: int = 2

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if isinstance(self.sites, str):
            self.sites = [site.strip() for site in self.sites.split(",") if site.strip()]
        if self.method == "red":
            self.red_config()  # validates variant and sites
        if self.lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {self.lora_rank}")

    @property
    def label(self) -> str:
        """A short human name: 'RED full (ffn)', 'LoRA r=8', 'TARE E=4 k=2 (ffn)', 'full fine-tuning'."""
        where = "+".join(self.sites)
        if self.method == "red":
            return f"RED {self.variant} ({where})"
        if self.method == "tare":
            return f"TARE E={self.tare_editors} k={self.tare_top_k} ({where})"
        return f"LoRA r={self.lora_rank}" if self.method == "lora" else "full fine-tuning"

    def red_config(self) -> RedConfig:
        return RedConfig.from_variant(
            self.variant, sites=self.sites, layers=self.layers, target_modules=self.target_modules
        )

    def tare_config(self):
        from .tare import TareConfig

        return TareConfig(
            num_editors=self.tare_editors,
            top_k=self.tare_top_k,
            sites=self.sites,
            layers=self.layers,
            target_modules=self.target_modules,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MethodSpec:
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


def apply_method(model: nn.Module, spec: MethodSpec, task: str, head_parameter_names=()) -> nn.Module:
    """Make ``model`` trainable by ``spec`` (mutates it); returns the model to train (PEFT wraps it)."""
    if spec.method == "red":
        attach_red(model, spec.red_config())
    elif spec.method == "tare":
        from .tare import attach_tare

        attach_tare(model, spec.tare_config())
    elif spec.method == "lora":
        return _apply_lora(model, spec, task, head_parameter_names)
    else:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    _unfreeze(model, head_parameter_names)
    return model


def _unfreeze(model: nn.Module, names) -> None:
    parameters = dict(model.named_parameters())
    for name in names:
        parameters[name].requires_grad_(True)


def _apply_lora(model: nn.Module, spec: MethodSpec, task: str, head_parameter_names) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    heads = sorted({name.split(".")[0] for name in head_parameter_names})
    config = LoraConfig(
        r=spec.lora_rank,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=spec.target_modules,  # None: PEFT's attention projections for this family
        task_type="SEQ_CLS" if task == "classification" else "CAUSAL_LM",
        modules_to_save=heads or None,
    )
    return get_peft_model(model, config)


@contextmanager
def base_behaviour(model: nn.Module, spec: MethodSpec) -> Iterator[None]:
    """Inside this block the trained model behaves as its base model (full fine-tuning cannot)."""
    if spec.method == "red":
        with red_disabled(model):
            yield
    elif spec.method == "tare":
        from .tare import tare_disabled

        with tare_disabled(model):
            yield
    elif spec.method == "lora":
        with model.disable_adapter():
            yield
    else:
        raise ValueError("a fully fine-tuned model has no base behaviour to switch back to; load the base model")


def save_method(model: nn.Module, spec: MethodSpec, directory: str | Path, base_model: str, head_parameter_names=()):
    """Write the trained method: RED/TARE in the edits format, LoRA as a PEFT adapter, full as a checkpoint."""
    directory = Path(directory)
    if spec.method == "red":
        save_edits(model, directory, base_model, head_parameter_names)
    elif spec.method == "tare":
        from .tare_saving import save_tare

        save_tare(model, directory, base_model, head_parameter_names)
    elif spec.method == "lora":
        model.peft_config["default"].base_model_name_or_path = base_model
        model.save_pretrained(directory)
    else:
        model.save_pretrained(directory)
    return directory


def detect_method(directory: str | Path) -> str:
    """Which method a saved directory holds: 'red', 'tare', 'lora' or 'full'."""
    directory = Path(directory)
    if (directory / CONFIG_FILE).is_file():
        return read_edits_config(directory).get("method", "red")
    if (directory / "adapter_config.json").is_file():
        return "lora"
    if (directory / "config.json").is_file():
        return "full"
    raise EditsFileError(f"{directory} holds no edits: expected {CONFIG_FILE} (RED/TARE) or adapter_config.json (LoRA)")


def load_method(model: nn.Module, directory: str | Path) -> tuple[nn.Module, MethodSpec]:
    """Attach saved RED/TARE edits or a LoRA adapter to a fresh base model; the spec is read from the files."""
    method = detect_method(directory)
    if method == "red":
        config = load_edits(model, directory)
        spec = MethodSpec(
            "red",
            variant=config.variant,
            sites=config.sites,
            layers=config.layers,
            target_modules=config.target_modules,
        )
        return model, spec
    if method == "tare":
        from .tare_saving import load_tare

        config = load_tare(model, directory)
        spec = MethodSpec(
            "tare",
            sites=config.sites,
            layers=config.layers,
            target_modules=config.target_modules,
            tare_editors=config.num_editors,
            tare_top_k=config.top_k,
        )
        return model, spec
    if method == "lora":
        from peft import PeftModel

        adapter = json.loads((Path(directory) / "adapter_config.json").read_text())
        spec = MethodSpec("lora", lora_rank=adapter.get("r", 8), lora_alpha=adapter.get("lora_alpha", 16))
        return PeftModel.from_pretrained(model, str(directory)).eval(), spec
    raise EditsFileError(f"{directory} is a full model checkpoint: load it as the model, not as edits")
