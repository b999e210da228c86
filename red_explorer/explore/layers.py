"""Which layers of a RED edit matter: leave-one-out and keep-one losses, and layer selections like "1,2,5-9"."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from red_explorer.core.red.bank import swap_edits
from red_explorer.core.red.edit import BIAS, SCALE, get_state, red_disabled, red_vectors
from red_explorer.engine.evaluation import evaluate
from red_explorer.engine.progress import OnProgress, PassCounter

LAYER_SYNTAX = "comma-separated items: 3 | 5-9 (inclusive) | first:4 | last:4, e.g. '0,2,5-9' or 'last:4'"


def layer_count(model: nn.Module) -> int:
    """The number of transformer layers (``config.num_hidden_layers``)."""
    count = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if not isinstance(count, int) or count < 1:
        raise ValueError("the model config has no num_hidden_layers: give layer indices explicitly, e.g. '0,1,2'")
    return count


def parse_layers(text: str, num_layers: int | None = None) -> list[int]:
    """The sorted layer indices a selection names: "1,2,5-9", "first:4", "last:4" or a mix.

    ``num_layers`` (the model's layer count) resolves "last:K" and bounds every index; without it
    only explicit indices and "first:K" are accepted.
    """
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise ValueError(f"no layers given; use {LAYER_SYNTAX}")
    chosen: set[int] = set()
    for item in items:
        chosen.update(_item_layers(item, num_layers))
    if num_layers is not None:
        outside = sorted(index for index in chosen if index >= num_layers)
        if outside:
            raise ValueError(
                f"layer {outside[0]} does not exist: the model has {num_layers} layers (0..{num_layers - 1})"
            )
    return sorted(chosen)


def _item_layers(item: str, num_layers: int | None) -> range:
    if match := re.fullmatch(r"(first|last):(\d+)", item):
        count = int(match.group(2))
        if count < 1:
            raise ValueError(f"{item!r}: the count must be at least 1")
        if match.group(1) == "first":
            return range(count)
        if num_layers is None:
            raise ValueError(f"{item!r} needs the model's layer count; give explicit indices instead")
        if count > num_layers:
            raise ValueError(f"{item!r}: the model has only {num_layers} layers")
        return range(num_layers - count, num_layers)
    if match := re.fullmatch(r"(\d+)(?:-(\d+))?", item):
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        if end < start:
            raise ValueError(f"{item!r}: a range runs upwards, e.g. {end}-{start}")
        return range(start, end + 1)
    raise ValueError(f"cannot read layers {item!r}; use {LAYER_SYNTAX}")


def reset_sites(vectors: Mapping[str, torch.Tensor], site_names: Iterable[str]) -> dict[str, torch.Tensor]:
    """A copy of RED vectors where the named sites are the identity edit again (scale → 1, bias → 0)."""
    reset = set(site_names)
    result = {}
    for name, vector in vectors.items():
        site, _, kind = name.rpartition(".")
        if site not in reset:
            result[name] = vector.detach().clone()
        elif kind == SCALE:
            result[name] = torch.ones_like(vector)
        elif kind == BIAS:
            result[name] = torch.zeros_like(vector)
        else:
            raise ValueError(f"{name!r} is not a RED vector name (<module>.{SCALE} or <module>.{BIAS})")
    return result


@dataclass(frozen=True)
class LayerEffect:
    """What one layer's edit is worth: the loss without it, and the loss with it alone."""

    layer_index: int
    sites: list[str]
    loss_without: float  # the run with this layer's vectors reset (leave-one-out)
    loss_only: float  # only this layer's vectors kept, every other layer reset
    cost_of_removing: float  # loss_without − run loss: > 0 when the layer helps
    gain_alone: float  # base loss − loss_only: > 0 when the layer helps on its own


@dataclass(frozen=True)
class LayerImportance:
    """Per-layer leave-one-out and keep-one losses of a RED run, beside the base and the whole run."""

    base_loss: float
    run_loss: float
    layers: list[LayerEffect]

    def records(self) -> list[dict]:
        """One row per layer (layer_index ascending), for a table or a bar chart."""
        return [asdict(effect) for effect in self.layers]

    def to_dict(self) -> dict:
        return {"base_loss": self.base_loss, "run_loss": self.run_loss, "layers": self.records()}


def layer_importance(
    model: nn.Module,
    batches: list[dict[str, torch.Tensor]],
    task: str = "causal-lm",
    on_progress: OnProgress | None = None,
) -> LayerImportance:
    """Validation loss of a model carrying RED with each layer's edit removed, and with it alone.

    Sites are grouped by layer index (an 'ffn' and an 'attn' site of one layer go together). The
    vectors are swapped in place (``swap_edits``) and restored afterwards. ``on_progress(done, total, what)``
    hears of each of the 2 + 2 × layers evaluations (base, run, then per layer: leave out, keep only).
    """
    state = get_state(model)
    by_layer: dict[int, list[str]] = {}
    for site in state.sites:
        by_layer.setdefault(site.layer_index, []).append(site.name)
    original = {name: vector.detach().clone() for name, vector in red_vectors(model).items()}
    every_site = [site.name for site in state.sites]
    counter = PassCounter(2 + 2 * len(by_layer), on_progress)
    with counter.step("the base model"), red_disabled(model):
        base_loss = evaluate(model, batches, task)["loss"]
    with counter.step("the whole run"):
        run_loss = evaluate(model, batches, task)["loss"]
    effects = []
    try:
        for position, (layer_index, sites) in enumerate(sorted(by_layer.items()), start=1):
            layer = f"layer {layer_index} ({position} of {len(by_layer)})"
            swap_edits(model, reset_sites(original, sites))
            with counter.step(f"{layer} · leave out"):
                without = evaluate(model, batches, task)["loss"]
            swap_edits(model, reset_sites(original, [name for name in every_site if name not in sites]))
            with counter.step(f"{layer} · keep only"):
                only = evaluate(model, batches, task)["loss"]
            effects.append(LayerEffect(layer_index, sites, without, only, without - run_loss, base_loss - only))
    finally:
        swap_edits(model, original)
    counter.finish()
    return LayerImportance(base_loss=base_loss, run_loss=run_loss, layers=effects)
