"""What a base model looks like at a glance: shape, edit sites, and what each method would train."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from red_explorer.core.red.config import RedConfig
from red_explorer.core.registry import MethodSpec, apply_method
from red_explorer.core.sites import Site, find_scheme, find_sites, output_size, site_report
from red_explorer.models.loading import LoadedModel

EXPERTS_NOTE = (
    "Every FFN block of this model is a mixture of experts, with no single dense output: train RED or TARE on "
    "the attention output (Train → Edit sites), or name the modules with --target-modules in the CLI."
)


@dataclass
class ModelInfo:
    """A base model at a glance: its shape, where RED edits it, and what each method would train."""

    spec: str
    task: str
    architecture: str
    model_type: str
    family: str
    num_layers: int
    edited_layers: int  # layers RED's FFN site reaches (fewer than num_layers on mixture-of-experts models)
    hidden_size: int
    intermediate_size: int | None
    vocab_size: int | None
    total_parameters: int
    ffn_module: str  # "" where no FFN output is dense (an all-experts model)
    attn_module: str
    device: str
    dtype: str
    parameter_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    quantize: str | None = None  # how the frozen weights are stored: None, "8bit", "4bit"


def _sites(model: nn.Module, kind: str) -> list[Site]:
    """RED's sites of one kind, or none (an all-experts model has no dense FFN output)."""
    try:
        return find_sites(model, RedConfig(sites=[kind]))
    except ValueError:
        return []


def _width(model: nn.Module, sites: list[Site]) -> int:
    """Σ over the sites of their output width: the length of all RED vectors of one kind."""
    return sum(output_size(model.get_submodule(site.name)) for site in sites)


def _lora_count(model: nn.Module, task: str, rank: int = 8) -> int:
    """LoRA's trainable parameters, counted by PEFT itself on a weightless (meta-device) copy."""
    with torch.device("meta"):
        skeleton = type(model)._from_config(copy.deepcopy(model.config))
    trained = apply_method(skeleton, MethodSpec("lora", rank=rank), task)
    return sum(p.numel() for name, p in trained.named_parameters() if p.requires_grad and "lora_" in name)


def method_parameter_counts(model: nn.Module, task: str) -> dict[str, int]:
    """Trainable parameters of each method on this architecture (a classification head excluded).

    LoRA is left out where PEFT has no default projections for the family (it then needs target_modules); where
    no FFN output is dense (Mixtral), RED and TARE are counted on the attention output.
    """
    ffn, attn = _width(model, _sites(model, "ffn")), _width(model, _sites(model, "attn"))
    editors = MethodSpec("tare").num_editors
    if ffn:
        counts = {
            "RED (FFN)": 2 * ffn,
            "RED (FFN + attention)": 2 * (ffn + attn),
            f"TARE (E={editors}, k=2)": 3 * editors * ffn,
        }
    else:  # every FFN is a mixture of experts: RED and TARE edit the attention output
        counts = {"RED (attention)": 2 * attn, f"TARE (E={editors}, k=2, attention)": 3 * editors * attn}
    try:
        counts["LoRA (r=8)"] = _lora_count(model, task)
    except ValueError:  # PEFT has no default projections for this family: LoRA needs target_modules here
        pass
    return counts | {"Full fine-tuning": sum(parameter.numel() for parameter in model.parameters())}


def _config_value(config, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def model_info(loaded: LoadedModel) -> ModelInfo:
    """Describe a loaded base model (layers, widths, edit sites, parameter counts per method)."""
    model, config = loaded.model, loaded.model.config
    sites = {kind: _sites(model, kind) for kind in ("ffn", "attn")}
    if not sites["ffn"] and not sites["attn"]:
        find_scheme(model)  # raises: RED knows neither site of this family, and says how to name the modules
    report = site_report(model, RedConfig(sites=["ffn"]))
    notes = [report.message()] if not report.complete else []
    if not sites["ffn"]:
        notes.append(EXPERTS_NOTE)
    return ModelInfo(
        spec=loaded.name,
        task=loaded.task,
        architecture=type(model).__name__,
        model_type=config.model_type,
        family=find_scheme(model).family,
        num_layers=len(report.layers) or _config_value(config, "num_hidden_layers", "n_layer", "num_layers") or 0,
        edited_layers=len(sites["ffn"]),
        hidden_size=_config_value(config, "hidden_size", "n_embd", "d_model") or 0,
        intermediate_size=_config_value(config, "intermediate_size", "n_inner", "ffn_dim", "d_ff"),
        vocab_size=_config_value(config, "vocab_size"),
        total_parameters=sum(parameter.numel() for parameter in model.parameters()),
        ffn_module=sites["ffn"][0].name if sites["ffn"] else "",
        attn_module=sites["attn"][0].name if sites["attn"] else "",
        device=str(loaded.device),
        dtype=str(loaded.dtype).removeprefix("torch."),
        parameter_counts=method_parameter_counts(model, loaded.task),
        notes=notes,
        quantize=loaded.quantize,
    )
