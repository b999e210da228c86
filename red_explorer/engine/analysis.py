"""What an edit learned, as numbers: per-layer magnitudes, layer × dimension matrices, most-edited dimensions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from red_explorer.core.red.edit import BIAS, SCALE
from red_explorer.core.sites import SCHEMES

KIND_ORDER = {"ffn": 0, "attn": 1, "custom": 2}
VECTOR_KINDS = ("scale", "bias")


@dataclass(frozen=True)
class SiteEdit:
    """The learned vectors of one edited module. RED(h) = scale ⊙ h + bias.

    A variant without a vector holds the identity there (scale = 1, bias = 0) and says so in
    ``has_scale`` / ``has_bias``.
    """

    module: str
    kind: str  # "ffn", "attn" or "custom"
    layer_index: int
    scale: np.ndarray  # (H,)
    bias: np.ndarray  # (H,)
    has_scale: bool
    has_bias: bool

    @property
    def label(self) -> str:
        return f"L{self.layer_index} {self.kind}"


def site_kind(module: str) -> tuple[str, int]:
    """('ffn' | 'attn' | 'custom', layer index) of an edited module name, from the known families."""
    for scheme in SCHEMES:
        for kind in ("ffn", "attn"):
            match = re.fullmatch(getattr(scheme, kind), module)
            if match:
                return kind, int(match.group(1))
    numbers = re.findall(r"\.(\d+)\.", f".{module}.")
    return "custom", int(numbers[0]) if numbers else -1


def site_edits(vectors: Mapping[str, torch.Tensor]) -> list[SiteEdit]:
    """Group ``red_vectors(model)`` (``<module>.red_scale`` / ``<module>.red_bias``) by module, in layer order."""
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for name, tensor in vectors.items():
        module, _, kind = name.rpartition(".")
        if kind in (SCALE, BIAS):
            grouped.setdefault(module, {})[kind] = tensor.detach().float().cpu().numpy().reshape(-1)
    edits = []
    for module, found in grouped.items():
        width = next(iter(found.values())).shape[0]
        kind, layer_index = site_kind(module)
        edits.append(
            SiteEdit(
                module=module,
                kind=kind,
                layer_index=layer_index,
                scale=found.get(SCALE, np.ones(width, dtype=np.float32)),
                bias=found.get(BIAS, np.zeros(width, dtype=np.float32)),
                has_scale=SCALE in found,
                has_bias=BIAS in found,
            )
        )
    if not edits:
        raise ValueError("no RED vectors found: expected names ending in .red_scale or .red_bias")
    return sorted(edits, key=lambda edit: (edit.layer_index, KIND_ORDER[edit.kind], edit.module))


@dataclass(frozen=True)
class LayerMagnitudes:
    """Per layer of one site kind: mean |scale − 1| and mean |bias| over the hidden dimensions."""

    kind: str
    layers: list[int]
    scale: list[float]
    bias: list[float]


def layer_magnitudes(edits: list[SiteEdit]) -> list[LayerMagnitudes]:
    """One LayerMagnitudes per site kind present ('ffn' first), layers ascending."""
    result = []
    for kind in sorted({edit.kind for edit in edits}, key=KIND_ORDER.get):
        chosen = [edit for edit in edits if edit.kind == kind]
        result.append(
            LayerMagnitudes(
                kind=kind,
                layers=[edit.layer_index for edit in chosen],
                scale=[float(np.abs(edit.scale - 1).mean()) for edit in chosen],
                bias=[float(np.abs(edit.bias).mean()) for edit in chosen],
            )
        )
    return result


def edit_matrix(edits: list[SiteEdit], vector: str) -> tuple[list[str], np.ndarray]:
    """Row labels ('L3 ffn') and the signed (sites, H) matrix of ``scale − 1`` or ``bias``."""
    if vector not in VECTOR_KINDS:
        raise ValueError(f"vector must be one of {VECTOR_KINDS}, got {vector!r}")
    rows = [edit.scale - 1 if vector == "scale" else edit.bias for edit in edits]
    return [edit.label for edit in edits], np.stack(rows)


def edit_values(edits: list[SiteEdit]) -> dict[str, np.ndarray]:
    """Every learned value, flattened: {"scale − 1": ..., "bias": ...} for the vectors the variant has."""
    values = {}
    if any(edit.has_scale for edit in edits):
        values["scale − 1"] = np.concatenate([edit.scale - 1 for edit in edits if edit.has_scale])
    if any(edit.has_bias for edit in edits):
        values["bias"] = np.concatenate([edit.bias for edit in edits if edit.has_bias])
    return values


@dataclass(frozen=True)
class EditedDimension:
    """One hidden dimension of one site and how far its edit is from the identity."""

    layer_index: int
    kind: str
    dimension: int
    scale: float
    bias: float
    score: float  # |scale − 1| + |bias|: the largest change the edit makes to a unit activation


def top_dimensions(edits: list[SiteEdit], k: int = 10) -> list[EditedDimension]:
    """The ``k`` (site, dimension) pairs with the largest |scale − 1| + |bias|, largest first."""
    candidates = []
    for edit in edits:
        scores = np.abs(edit.scale - 1) + np.abs(edit.bias)
        for dimension in np.argsort(-scores, kind="stable")[:k]:
            candidates.append(
                EditedDimension(
                    edit.layer_index,
                    edit.kind,
                    int(dimension),
                    float(edit.scale[dimension]),
                    float(edit.bias[dimension]),
                    float(scores[dimension]),
                )
            )
    return sorted(candidates, key=lambda item: -item.score)[:k]


def edit_summary(edits: list[SiteEdit]) -> dict[str, float | int]:
    """Headline numbers: sites, parameters, mean and max |scale − 1| and |bias|."""
    scales = np.concatenate([edit.scale - 1 for edit in edits])
    biases = np.concatenate([edit.bias for edit in edits])
    parameters = sum(edit.scale.size * (edit.has_scale + edit.has_bias) for edit in edits)
    return {
        "sites": len(edits),
        "parameters": int(parameters),
        "mean_abs_scale_minus_1": float(np.abs(scales).mean()),
        "max_abs_scale_minus_1": float(np.abs(scales).max()),
        "mean_abs_bias": float(np.abs(biases).mean()),
        "max_abs_bias": float(np.abs(biases).max()),
    }


def vectors_from_directory(directory: str | Path) -> dict[str, torch.Tensor]:
    """The RED vectors of a saved edits directory (the classification head left out)."""
    from red_explorer.core.checkpoint import read_record
    from red_explorer.core.red.saving import read_tensors

    method = read_record(directory).get("method", "red")
    if method != "red":
        raise ValueError(f"{directory} holds {method} edits; this analysis reads RED edits")
    return {name: tensor for name, tensor in read_tensors(directory).items() if name.endswith((SCALE, BIAS))}


# ---------------------------------------------------------------- TARE


@dataclass(frozen=True)
class EditorMagnitudes:
    """TARE: per site (rows) and editor (columns), mean |scale − 1| and mean |bias|."""

    site_labels: list[str]
    scale: np.ndarray  # (sites, E)
    bias: np.ndarray  # (sites, E)


def editor_table(magnitudes: Mapping[str, Mapping[str, torch.Tensor]]) -> EditorMagnitudes:
    """``tare.editor_magnitudes(model)`` as matrices, rows in layer order."""
    order = sorted(magnitudes, key=lambda module: (site_kind(module)[1], KIND_ORDER[site_kind(module)[0]]))
    labels = [f"L{site_kind(module)[1]} {site_kind(module)[0]}" for module in order]
    scale = np.stack([magnitudes[module]["scale"].float().numpy() for module in order])
    bias = np.stack([magnitudes[module]["bias"].float().numpy() for module in order])
    return EditorMagnitudes(labels, scale, bias)


@dataclass(frozen=True)
class RoutingTable:
    """TARE routing of one text: the best editor of each token at each site, and editor usage."""

    tokens: list[str]
    site_labels: list[str]
    top_editor: np.ndarray  # (sites, T) int: the editor with the largest weight
    top_weight: np.ndarray  # (sites, T): its mixing weight
    usage: np.ndarray  # (sites, E): fraction of tokens that chose each editor (rows sum to k)


def routing_table(routing, tokens: list[str]) -> RoutingTable:
    """A ``tare.TareRouting`` of one sequence and its token strings as plain arrays."""
    selected = routing.selected.numpy()  # (sites, T, k), best first
    if selected.shape[1] != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but the routing covers {selected.shape[1]}")
    pairs = zip(routing.site_names, routing.layer_indices, strict=True)
    labels = [f"L{layer} {site_kind(name)[0]}" for name, layer in pairs]
    return RoutingTable(
        tokens=list(tokens),
        site_labels=labels,
        top_editor=selected[:, :, 0],
        top_weight=routing.weights.numpy()[:, :, 0],
        usage=routing.usage.numpy(),
    )
