"""Inspect tab: what RED learned (per layer, per dimension, distributions) for one or two runs, and TARE routing."""

from __future__ import annotations

from html import escape

import pandas as pd

from red_explorer.app.kept_runs import same_base
from red_explorer.app.plots import (
    distribution_figure,
    edit_heatmap_figure,
    editor_magnitude_figure,
    empty_figure,
    layer_magnitude_figure,
    routing_figure,
    usage_figure,
)
from red_explorer.app.ui.handlers.common import Choices, Visible, other_model_name, pick_run, run_choices
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.session import Session
from red_explorer.engine.analysis import (
    SiteEdit,
    edit_matrix,
    edit_summary,
    edit_values,
    layer_magnitudes,
    top_dimensions,
)

NONE = "(none)"
EDIT_METHODS = ("red",)
VECTORS = (("scale", "scale − 1"), ("bias", "bias"))
TOP_COLUMNS = ["layer", "site", "dimension", "scale", "bias", "|scale − 1| + |bias|"]


def choices(session: Session, current_a: str | None = None, current_b: str | None = None):
    """Dropdown choices: run A (RED runs), run B (RED runs or none), TARE run."""
    workbench = session.workbench
    first = run_choices(workbench, EDIT_METHODS, current_a)
    second_labels = [NONE] + first.choices
    second = Choices(second_labels, current_b if current_b in second_labels else NONE, first.names)
    return first, second, run_choices(workbench, ("tare",))


def learned(edits: list[SiteEdit]) -> tuple[str, ...]:
    """The vectors a run learns: ("scale", "bias"), ("scale",) or ("bias",)."""
    flags = {"scale": any(edit.has_scale for edit in edits), "bias": any(edit.has_bias for edit in edits)}
    return tuple(vector for vector, _ in VECTORS if flags[vector])


def shared_ranges(*runs: list[SiteEdit]) -> tuple[dict[str, float], dict[str, float]]:
    """The ranges two runs share side by side: (top of each per-layer panel, colour limit of each heatmap)."""
    bars, colours = {}, {}
    for vector, _ in VECTORS:
        magnitudes = [item for edits in runs for item in layer_magnitudes(edits)]
        bars[vector] = max((max(getattr(item, vector), default=0.0) for item in magnitudes), default=0.0)
        colours[vector] = max(float(abs(edit_matrix(edits, vector)[1]).max()) for edits in runs)
    return bars, colours


def _panel(label: str, edits: list[SiteEdit], bars: dict, colours: dict) -> tuple:
    """(per-layer bars, scale heatmap, bias heatmap) of one RED run: panels only for the vectors it learns (the
    heatmap of a vector it does not learn says so, beside the other run's; ``panels_shown`` hides a row neither
    run learns)."""
    vectors = learned(edits)
    panels = [layer_magnitude_figure(layer_magnitudes(edits), f"{label}: per layer", vectors, bars)]
    for vector, title in VECTORS:
        if vector not in vectors:
            panels.append(empty_figure(f"{label} learns no {vector}"))
            continue
        rows, matrix = edit_matrix(edits, vector)
        panels.append(edit_heatmap_figure(rows, matrix, f"{label}: {title} (layer × dimension)", colours[vector]))
    return tuple(panels)


def _red_labels(session: Session) -> list[str]:
    """Every RED run of the owner, on any base model (Inspect reads the stored vectors, no model needed)."""
    return [run.label for run in session.workbench.all_runs() if run.spec.method in EDIT_METHODS]


def _latest(session: Session) -> str:
    """This model's latest RED run, else the latest RED run of any base model (an error says to train one)."""
    workbench = session.workbench
    here = workbench.run_labels(EDIT_METHODS)
    return pick_run(workbench, (here or _red_labels(session) or [None])[-1], EDIT_METHODS)


def panels_shown(session: Session, label_a: str | None, label_b: str | None = None) -> tuple[Visible, ...]:
    """Which heatmaps the page shows: (A scale, A bias, B scale, B bias). A row (A's quantity | B's) shows when
    either run learns it: a run that does not learn it shows a note there; with no run B, B's heatmaps hide."""
    workbench = session.workbench
    labels = _red_labels(session)
    label_a = label_a or (_latest(session) if labels else None)
    if label_a not in labels:  # no run here: A shows why in every panel, B only in its first
        return tuple(Visible(side == "A") for side in "AB" for _ in VECTORS)
    learned_a = learned(workbench.red_edits(label_a))
    learned_b = learned(workbench.red_edits(label_b)) if label_b in labels else None
    rows = [vector in learned_a or vector in (learned_b or ()) for vector, _ in VECTORS]
    return tuple(Visible(row) for row in rows) + tuple(Visible(row and learned_b is not None) for row in rows)


def _trained_on(session: Session, label: str) -> str:
    """' (trained on NAME)' for a run of another base model than the one loaded, else ''."""
    workbench = session.workbench
    run, key = workbench.any_run(label), workbench.training_key().resolved()
    return (
        "" if same_base(run.record, key) else f" (trained on another base model: {plain(other_model_name(run, key))})"
    )


def _summary(label: str, edits, trained_on: str = "") -> str:
    """Sites, learned values, and how far the learned vectors are from the identity (only those it learns)."""
    numbers = edit_summary(edits)
    parts = [
        f"**{plain(label)}**{trained_on}: {numbers['sites']} edited sites, {numbers['parameters']:,} learned values"
    ]
    vectors = learned(edits)
    if "scale" in vectors:
        parts.append(
            f"mean \\|scale − 1\\| {numbers['mean_abs_scale_minus_1']:.4f} (max {numbers['max_abs_scale_minus_1']:.3f})"
        )
    if "bias" in vectors:
        parts.append(f"mean \\|bias\\| {numbers['mean_abs_bias']:.4f} (max {numbers['max_abs_bias']:.3f})")
    return " · ".join(parts)


def top_table(edits, k: int = 12) -> pd.DataFrame:
    rows = [
        {
            "layer": item.layer_index,
            "site": item.kind,
            "dimension": item.dimension,
            "scale": round(item.scale, 4),
            "bias": round(item.bias, 4),
            "|scale − 1| + |bias|": round(item.score, 4),
        }
        for item in top_dimensions(edits, k)
    ]
    return pd.DataFrame(rows, columns=TOP_COLUMNS)


def inspect(session: Session, label_a: str | None, label_b: str | None = None):
    """Run A (and optionally B) side by side on the same axes and colour ranges: (summary, A layers, A scale,
    A bias, B layers, B scale, B bias, distribution of A's values, A's most-edited dimensions).

    A run's panels cover only the vectors it learns (no empty bias bars for a scale-only run).
    """
    workbench = session.workbench
    label_a = label_a or _latest(session)
    edits_a = workbench.red_edits(label_a)
    summary = [_summary(label_a, edits_a, _trained_on(session, label_a))]
    if label_b and label_b != NONE:
        edits_b = workbench.red_edits(label_b)
        bars, colours = shared_ranges(edits_a, edits_b)
        panel_b = _panel(label_b, edits_b, bars, colours)
        summary.append(_summary(label_b, edits_b, _trained_on(session, label_b)))
    else:
        bars, colours = shared_ranges(edits_a)
        panel_b = tuple(empty_figure("Pick a second run to compare side by side") for _ in range(3))
    distribution = distribution_figure(edit_values(edits_a), f"{label_a}: distribution of the learned values")
    panel_a = _panel(label_a, edits_a, bars, colours)
    for figure_a, figure_b in zip(panel_a[1:], panel_b[1:], strict=True):  # a row's two heatmaps, one height
        height = max(figure_a.layout.height, figure_b.layout.height)
        figure_a.update_layout(height=height)
        figure_b.update_layout(height=height)
    return ("\n\n".join(summary), *panel_a, *panel_b, distribution, top_table(edits_a))


def tare_view(session: Session, label: str | None, text: str):
    """A TARE run on one text: (token × layer routing heatmap, editor usage, editor magnitudes)."""
    workbench = session.workbench
    label = pick_run(workbench, label, ("tare",))
    magnitudes, table = workbench.tare_inspection(label, text)
    return (
        routing_figure(table, f"{label}: top editor per token and layer"),
        usage_figure(table),
        (editor_magnitude_figure(magnitudes)),
    )


def inspect_if_any(session: Session, label_a: str | None, label_b: str | None = None):
    """``inspect`` when the session has a RED run; otherwise empty panels that say what to do."""
    if _red_labels(session):
        return inspect(session, label_a, label_b)
    return nothing_shown("*No RED run yet.*", "Train a RED run in the Train tab to see what it learned")


def nothing_shown(summary: str, why: str) -> tuple:
    """Every output of ``inspect`` cleared: the summary line, and panels that say ``why`` they are empty."""
    return (summary, *[empty_figure(why) for _ in range(7)], pd.DataFrame(columns=TOP_COLUMNS))


def restore_after_failure(session: Session) -> tuple:
    """After a refused request: the reason, and no panel left from the run shown before (it is not the one chosen)."""
    reason = session.last_error or "the run was not shown"
    return nothing_shown(f"✕ **{escape(reason)}**", "Nothing shown: see the reason above")
