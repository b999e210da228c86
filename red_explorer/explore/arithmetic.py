"""Edit arithmetic on RED vectors of one base and one set of sites: compose, mix, negate and invert."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from red_explorer.core.red.edit import BIAS, SCALE
from red_explorer.explore.runs import check_compatible, read_red_run, write_red_run
from red_explorer.explore.strength import scaled_vectors

Vectors = Mapping[str, torch.Tensor]
SitePair = tuple[torch.Tensor | None, torch.Tensor | None]  # (scale, bias), None where the edit lacks it


def _sites(vectors: Vectors) -> dict[str, SitePair]:
    """Vectors grouped by edited module, as float64 (scale, bias); a missing vector is None."""
    pairs: dict[str, list] = {}
    for name, vector in vectors.items():
        site, _, kind = name.rpartition(".")
        if kind not in (SCALE, BIAS):
            raise ValueError(f"{name!r} is not a RED vector name (<module>.{SCALE} or <module>.{BIAS})")
        pairs.setdefault(site, [None, None])[0 if kind == SCALE else 1] = vector.detach().double()
    return {site: (pair[0], pair[1]) for site, pair in pairs.items()}


def _same_sites(edits: Sequence[dict[str, SitePair]]) -> list[str]:
    names = list(edits[0])
    for index, edit in enumerate(edits[1:], start=1):
        if set(edit) != set(names):
            raise ValueError(f"edit {index} edits other modules than edit 0: arithmetic needs the same sites")
        for site in names:
            widths = {vector.shape[-1] for vector in (*edit[site], *edits[0][site]) if vector is not None}
            if len(widths) != 1:
                raise ValueError(f"{site}: the edits have vectors of different widths {sorted(widths)}")
    return names


def _scale(pair: SitePair) -> torch.Tensor:
    return pair[0] if pair[0] is not None else torch.ones_like(pair[1])


def _bias(pair: SitePair) -> torch.Tensor:
    return pair[1] if pair[1] is not None else torch.zeros_like(pair[0])


def _vectors(results: dict[str, SitePair], with_scale: bool, with_bias: bool) -> dict[str, torch.Tensor]:
    """Back to ``<module>.red_scale`` / ``.red_bias`` names in float32, keeping only the kinds asked for."""
    vectors = {}
    for site, (scale, bias) in results.items():
        if with_scale:
            vectors[f"{site}.{SCALE}"] = scale.float()
        if with_bias:
            vectors[f"{site}.{BIAS}"] = bias.float()
    return vectors


def _kinds(edits: Sequence[dict[str, SitePair]]) -> tuple[bool, bool]:
    """Whether any edit has a scale, and whether any has a bias (the result keeps those kinds)."""
    pairs = [pair for edit in edits for pair in edit.values()]
    return any(pair[0] is not None for pair in pairs), any(pair[1] is not None for pair in pairs)


def compose(first: Vectors, second: Vectors) -> dict[str, torch.Tensor]:
    """Apply ``first`` then ``second``, exactly: one RED edit equal to the two in series.

    B(A(h)) = s_B ⊙ (s_A ⊙ h + b_A) + b_B, so s = s_B ⊙ s_A and b = s_B ⊙ b_A + b_B.
    """
    edits = [_sites(first), _sites(second)]
    results = {}
    for site in _same_sites(edits):
        a, b = edits[0][site], edits[1][site]
        results[site] = (_scale(b) * _scale(a), _scale(b) * _bias(a) + _bias(b))
    return _vectors(results, *_kinds(edits))


def mix(edits: Sequence[Vectors], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """A weighted sum of the edits' changes: s = 1 + Σ_i w_i (s_i − 1), b = Σ_i w_i b_i.

    Weights (1, 1) add two edits' deltas; (0.5, 0.5) averages them; (1, −1) subtracts the second.
    """
    if not edits or len(edits) != len(weights):
        raise ValueError(f"mix needs one weight per edit: {len(edits)} edits, {len(weights)} weights")
    if not all(isinstance(w, (int, float)) and math.isfinite(w) for w in weights):
        raise ValueError(f"mix weights are finite numbers, got {list(weights)}")
    grouped = [_sites(edit) for edit in edits]
    results = {}
    for site in _same_sites(grouped):
        pairs = [edit[site] for edit in grouped]
        delta = sum(weight * (_scale(pair) - 1) for weight, pair in zip(weights, pairs, strict=True))
        bias = sum(weight * _bias(pair) for weight, pair in zip(weights, pairs, strict=True))
        results[site] = (1 + delta, bias)
    return _vectors(results, *_kinds(grouped))


def negate(edit: Vectors) -> dict[str, torch.Tensor]:
    """The edit at strength −1: s = 1 − (s − 1) = 2 − s, b = −b (the change reversed, to first order)."""
    return scaled_vectors(edit, -1.0)


def invert(edit: Vectors) -> dict[str, torch.Tensor]:
    """The exact inverse: s' = 1 / s, b' = −b / s, so that s' ⊙ (s ⊙ h + b) + b' = h at every site.

    Refuses a scale with a zero (that edit erased a dimension: nothing can bring it back).
    """
    grouped = _sites(edit)
    results = {}
    for site, pair in grouped.items():
        scale = _scale(pair)
        if bool((scale == 0).any()):
            raise ValueError(f"{site}: the scale has zeros, so the edit erased those dimensions and has no inverse")
        results[site] = (1 / scale, -_bias(pair) / scale)
    return _vectors(results, *_kinds([grouped]))


def compose_runs(first: str | Path, second: str | Path, out: str | Path) -> Path:
    """Save ``compose`` of two RED runs (``first`` applied first) as an edits folder."""
    runs = [read_red_run(first), read_red_run(second)]
    check_compatible(runs)
    vectors = compose(runs[0].vectors, runs[1].vectors)
    return write_red_run(out, vectors, runs[0], {"operation": "compose", "runs": [str(first), str(second)]})


def mix_runs(directories: Sequence[str | Path], weights: Sequence[float], out: str | Path) -> Path:
    """Save ``mix`` of RED runs with the given weights as an edits folder."""
    runs = [read_red_run(directory) for directory in directories]
    check_compatible(runs)
    vectors = mix([run.vectors for run in runs], weights)
    derivation = {"operation": "mix", "runs": [str(d) for d in directories], "weights": [float(w) for w in weights]}
    return write_red_run(out, vectors, runs[0], derivation)


def negate_run(directory: str | Path, out: str | Path) -> Path:
    """Save the RED run at strength −1 as an edits folder."""
    run = read_red_run(directory)
    return write_red_run(out, negate(run.vectors), run, {"operation": "negate", "runs": [str(directory)]})


def invert_run(directory: str | Path, out: str | Path) -> Path:
    """Save the exact inverse of a RED run as an edits folder."""
    run = read_red_run(directory)
    return write_red_run(out, invert(run.vectors), run, {"operation": "invert", "runs": [str(directory)]})
