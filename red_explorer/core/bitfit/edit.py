"""BitFit on a model: which biases train, the base values kept for switching off, attach and detach."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from red_explorer.core.sites import Site
from red_explorer.core.state import STATE_ATTRIBUTE, EditState, attached_state, freeze

NO_BIAS_HINT = (
    "The closest method that adds new biases is RED's bias variant, h' = h + bias after each FFN: "
    "MethodSpec('red', variant='bias') (CLI: --method red --no-scale)."
)


@dataclass
class BitfitOptions:
    """Which existing biases train."""

    target_modules: str | None = field(
        default=None, metadata={"help": "regex over module names whose bias trains; None: every bias"}
    )

    def __post_init__(self) -> None:
        if self.target_modules is None:
            return
        if not isinstance(self.target_modules, str):
            raise ValueError(f"BitFit target_modules must be a regex (str) or None, got {self.target_modules!r}")
        try:
            re.compile(self.target_modules)
        except re.error as error:
            raise ValueError(f"BitFit target_modules {self.target_modules!r} is not a valid regex: {error}") from None


@dataclass
class BitfitState(EditState):
    """The shared edit state (no hooks: the biases are the model's own) plus the base values of the trained biases."""

    base_biases: dict[str, torch.Tensor] = field(default_factory=dict)  # parameter name -> base value


def _layer_index(name: str) -> int:
    numbers = re.findall(r"\.(\d+)\.", f".{name}.")
    return int(numbers[0]) if numbers else -1


def bias_names(model: nn.Module, options: BitfitOptions, head_parameter_names=()) -> list[str]:
    """The bias parameters BitFit trains: every ``*.bias`` (heads excluded), or those of the chosen modules."""
    heads = set(head_parameter_names)
    names = []
    for name, _ in model.named_parameters():
        module_name, _, leaf = name.rpartition(".")
        if leaf != "bias" or name in heads:
            continue
        if options.target_modules is None or re.fullmatch(options.target_modules, module_name):
            names.append(name)
    if names:
        return names
    model_type = getattr(model.config, "model_type", type(model).__name__)
    if options.target_modules is not None:
        raise ValueError(f"no module matching {options.target_modules!r} has a bias in this '{model_type}' model")
    raise ValueError(
        f"BitFit trains a model's existing biases, and this '{model_type}' model has none (Llama-family "
        f"models carry no bias in their linear or RMSNorm layers), so there is nothing to train. {NO_BIAS_HINT}"
    )


def get_bitfit_state(model: nn.Module) -> BitfitState:
    state = attached_state(model)
    if not isinstance(state, BitfitState):
        raise ValueError("this model carries no BitFit edit: apply_method(model, MethodSpec('bitfit'), task) first")
    return state


def attach_bitfit(model: nn.Module, options: BitfitOptions, head_parameter_names=()) -> list[str]:
    """Freeze the model, then let its biases train (mutates ``model``); returns their names."""
    existing = attached_state(model)
    if existing is not None:
        raise ValueError(f"this model already carries a '{existing.method}' edit: detach it before BitFit")
    names = bias_names(model, options, head_parameter_names)
    parameters = dict(model.named_parameters())
    freeze(model)
    base = {}
    for name in names:
        parameters[name].requires_grad_(True)
        base[name] = parameters[name].detach().clone()
    sites = [Site(name.rpartition(".")[0], "bias", _layer_index(name)) for name in names]
    setattr(model, STATE_ATTRIBUTE, BitfitState("bitfit", options, sites, base_biases=base))
    return names


def trained_biases(model: nn.Module) -> dict[str, nn.Parameter]:
    """The trained bias parameters by name."""
    parameters = dict(model.named_parameters())
    return {name: parameters[name] for name in get_bitfit_state(model).base_biases}


def _put(parameters: dict[str, nn.Parameter], values: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, value in values.items():
            parameters[name].copy_(value)


@contextmanager
def bitfit_disabled(model: nn.Module) -> Iterator[None]:
    """Inside this block the biases hold their base values (exactly the base model); the trained ones come back."""
    state = get_bitfit_state(model)
    biases = trained_biases(model)
    trained = {name: bias.detach().clone() for name, bias in biases.items()}
    _put(biases, state.base_biases)
    try:
        yield
    finally:
        _put(biases, trained)


def detach_bitfit(model: nn.Module) -> None:
    """Put the base biases back and freeze them: the model is exactly the base again."""
    biases = trained_biases(model)
    _put(biases, get_bitfit_state(model).base_biases)
    for bias in biases.values():
        bias.requires_grad_(False)
    delattr(model, STATE_ATTRIBUTE)
