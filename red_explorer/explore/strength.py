"""An edit at a strength α: 0 is the base model, 1 the trained edit, above 1 extrapolates, below 0 inverts."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from functools import partial

import torch
from torch import nn

from red_explorer.core.heads import remembered_head
from red_explorer.core.red.bank import swap_edits
from red_explorer.core.red.edit import BIAS, SCALE, red_vectors
from red_explorer.core.registry import attached_method
from red_explorer.core.tare.edit import BIAS as TARE_BIAS
from red_explorer.core.tare.edit import SCALE as TARE_SCALE
from red_explorer.core.tare.edit import tare_parameters
from red_explorer.engine.progress import OnProgress, PassCounter
from red_explorer.explore.measures import forward, kl_divergence, log_probabilities, loss_weight, position_mask

DEFAULT_STRENGTHS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)


def check_strength(strength: float) -> float:
    """A finite number, as a float; a ValueError otherwise."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise ValueError(f"a strength is a finite number (0 = base, 1 = the trained edit), got {strength!r}")
    return float(strength)


def scaled_scale(scale: torch.Tensor, strength: float) -> torch.Tensor:
    """scale_α = 1 + α (scale − 1), as torch.lerp(1, scale, α): exactly 1 at α = 0 and exactly scale at α = 1."""
    scale = scale.detach()
    return torch.lerp(torch.ones_like(scale), scale, check_strength(strength))


def scaled_vectors(vectors: Mapping[str, torch.Tensor], strength: float) -> dict[str, torch.Tensor]:
    """RED vectors (``<module>.red_scale`` / ``.red_bias``) at strength α.

    scale_α = 1 + α (scale − 1) and bias_α = α · bias, so that RED_α(h) = scale_α ⊙ h + bias_α
    = h + α · (RED(h) − h): every output moves by α times what the trained edit moves it.
    """
    strength = check_strength(strength)
    result = {}
    for name, vector in vectors.items():
        if name.endswith(f".{SCALE}"):
            result[name] = scaled_scale(vector, strength)
        elif name.endswith(f".{BIAS}"):
            result[name] = vector.detach() * strength
        else:
            raise ValueError(f"{name!r} is not a RED vector name (<module>.{SCALE} or <module>.{BIAS})")
    return result


@contextmanager
def red_at_strength(model: nn.Module, strength: float) -> Iterator[None]:
    """Inside this block the model's RED edit acts at strength α (vectors swapped in place, restored after)."""
    original = {name: vector.detach().clone() for name, vector in red_vectors(model).items()}
    swap_edits(model, scaled_vectors(original, strength))
    try:
        yield
    finally:
        swap_edits(model, original)


@contextmanager
def tare_at_strength(model: nn.Module, strength: float) -> Iterator[None]:
    """Inside this block TARE acts at strength α: editor e has scale_e,α = 1 + α (scale_e − 1), bias_e,α = α · bias_e.

    The selectors are unchanged, so each token picks the same k editors with the same weights p_e
    and TARE_α(h) = h + α · Σ_{e∈S} p_e ((scale_e − 1) ⊙ h + bias_e) = h + α · (TARE(h) − h): the
    routing stays, only the size of the edit it routes to changes.
    """
    strength = check_strength(strength)
    parameters = tare_parameters(model)
    original = {
        name: parameter.detach().clone()
        for name, parameter in parameters.items()
        if name.endswith((f".{TARE_SCALE}", f".{TARE_BIAS}"))
    }
    with torch.no_grad():
        for name, value in original.items():
            is_scale = name.endswith(f".{TARE_SCALE}")
            parameters[name].copy_(scaled_scale(value, strength) if is_scale else value * strength)
    try:
        yield
    finally:
        with torch.no_grad():
            for name, value in original.items():
                parameters[name].copy_(value)


@contextmanager
def lora_at_strength(model: nn.Module, strength: float) -> Iterator[None]:
    """Inside this block LoRA acts at strength α: W + α · (alpha / r) · B·A, through PEFT's per-layer ``scaling``."""
    from peft.tuners.lora import LoraLayer

    strength = check_strength(strength)
    layers = [module for module in model.modules() if isinstance(module, LoraLayer)]
    if not layers:
        raise ValueError("this model carries no LoRA layers: load the adapter with load_method(model, directory)")
    if any(any(layer.use_dora.values()) for layer in layers):
        raise ValueError("DoRA's learned magnitudes do not scale with PEFT's scaling: strengths apply to plain LoRA")
    if any(layer.merged for layer in layers):
        raise ValueError("the LoRA adapter is merged into the weights: call model.unmerge_adapter() to set a strength")
    saved = [(layer, dict(layer.scaling)) for layer in layers]
    for layer, scaling in saved:
        for adapter, value in scaling.items():
            layer.scaling[adapter] = value * strength
    try:
        yield
    finally:
        for layer, scaling in saved:
            layer.scaling.update(scaling)


def head_pairs(model: nn.Module) -> list[tuple[torch.Tensor, nn.Parameter]]:
    """(base weights, trained parameter) for each weight of the classification head a run trained.

    A PEFT adapter keeps the base's head beside its trained copy (``modules_to_save``); RED and TARE
    copy the run's head into the base, whose own head ``attach_saved`` keeps (``remembered_head``).
    """
    from peft.utils.other import ModulesToSaveWrapper

    pairs = []
    for wrapper in model.modules():
        if isinstance(wrapper, ModulesToSaveWrapper) and wrapper.active_adapters:
            base = dict(wrapper.original_module.named_parameters())
            trained = wrapper.modules_to_save[wrapper.active_adapters[0]].named_parameters()
            pairs += [(base[name].detach(), parameter) for name, parameter in trained]
    kept = remembered_head(model)
    if not pairs and kept is not None:
        parameters = dict(model.named_parameters())
        pairs += [(weights, parameters[name]) for name, (weights, _) in kept.weights.items()]
    return pairs


@contextmanager
def head_at_strength(model: nn.Module, strength: float) -> Iterator[None]:
    """Inside this block a head the run trained is head_α = base head + α (trained head − base head).

    As torch.lerp: exactly the base's head at α = 0 and the run's at α = 1, so that a classification run at
    strength 0 is the base model. A model whose head no run trained is left as it is.
    """
    strength = check_strength(strength)
    pairs = [(base, parameter, parameter.detach().clone()) for base, parameter in head_pairs(model)]
    with torch.no_grad():
        for base, parameter, trained in pairs:
            parameter.copy_(torch.lerp(base.to(trained.dtype), trained, strength))
    try:
        yield
    finally:
        with torch.no_grad():
            for _, parameter, trained in pairs:
                parameter.copy_(trained)


@contextmanager
def _edit_and_head_at_strength(handler: Callable, model: nn.Module, strength: float) -> Iterator[None]:
    with handler(model, strength), head_at_strength(model, strength):
        yield


STRENGTH_HANDLERS: dict[str, Callable[[nn.Module, float], AbstractContextManager]] = {
    "red": red_at_strength,
    "tare": tare_at_strength,
    "lora": lora_at_strength,
}


def strength_handler(model: nn.Module) -> Callable[[nn.Module, float], AbstractContextManager]:
    """The strength context of the method the model carries, its trained head too, or a ValueError naming those."""
    method = attached_method(model)
    handler = STRENGTH_HANDLERS.get(method.name)
    if handler is None:
        raise ValueError(
            f"{method.title} has no strength: strengths apply to {', '.join(STRENGTH_HANDLERS)} (a model that "
            "carries none of them counts as full fine-tuning, which replaced the weights: no edit to scale)"
        )
    return partial(_edit_and_head_at_strength, handler)


def at_strength(model: nn.Module, strength: float) -> AbstractContextManager:
    """Inside ``with at_strength(model, α):`` the edit the model carries (RED, TARE, LoRA) acts at strength α."""
    return strength_handler(model)(model, check_strength(strength))


@dataclass(frozen=True)
class DosePoint:
    """One strength's effect on validation data."""

    strength: float
    loss: float  # token-weighted validation loss (as in evaluation.evaluate)
    kl_from_base: float  # mean over validation tokens of KL(edited_α ‖ base) of the next-token distributions

    def to_dict(self) -> dict:
        return asdict(self)


def dose_response(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    on_progress: OnProgress | None = None,
) -> list[DosePoint]:
    """For each strength α: the validation loss and the mean KL(edited_α ‖ base) over validation tokens.

    The batches carry ``labels`` (``PreparedData.validation_batches``); tokens are the positions
    whose attention mask is 1 (rows, for classification). Per batch, one forward at strength 0 (the base)
    and one per strength; the base distributions are reused for every strength. ``on_progress(done, total,
    what)`` hears of each of those batches × (1 + strengths) forward passes.
    """
    strengths, batches = [check_strength(strength) for strength in strengths], list(batches)
    if not strengths:
        raise ValueError("give at least one strength, e.g. (-1, 0, 1, 2, 3)")
    handler = strength_handler(model)
    totals = {strength: [0.0, 0, 0.0, 0] for strength in strengths}  # loss sum, loss weight, KL sum, tokens
    counter = PassCounter(len(batches) * (1 + len(strengths)), on_progress)
    was_training = model.training
    model.eval()
    try:
        for number, batch in enumerate(batches, start=1):
            if "labels" not in batch:
                raise ValueError("dose_response needs batches with labels (PreparedData.validation_batches)")
            where = f"batch {number} of {len(batches)} · " if len(batches) > 1 else ""
            with counter.step(f"{where}the base"), handler(model, 0.0):  # its own classification head included
                base = log_probabilities(forward(model, batch).logits)  # (B, T, V) or (B, C)
            for position, strength in enumerate(strengths, start=1):
                step = counter.step(f"{where}α = {strength:g} ({position} of {len(strengths)})")
                with step, handler(model, strength):
                    output = forward(model, batch)
                _accumulate(totals[strength], output, base, batch)
    finally:
        model.train(was_training)
    counter.finish()
    return [_point(strength, *totals[strength]) for strength in strengths]


def _accumulate(total: list, output, base: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
    weight = loss_weight(batch["labels"], output.logits)
    mask = position_mask(batch, output.logits)
    divergence = kl_divergence(log_probabilities(output.logits), base)  # (B, T) or (B,)
    total[0] += output.loss.float().item() * weight
    total[1] += weight
    total[2] += float(divergence[mask].sum())
    total[3] += int(mask.sum())


def _point(strength: float, loss_sum: float, weight: int, kl_sum: float, tokens: int) -> DosePoint:
    if weight == 0 or tokens == 0:
        raise ValueError("the validation batches hold no tokens to score; add validation rows")
    return DosePoint(strength=strength, loss=loss_sum / weight, kl_from_base=kl_sum / tokens)
