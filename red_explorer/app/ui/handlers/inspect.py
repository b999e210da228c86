"""Inspect tab: what RED learned (per layer, per dimension, distributions) for one or two runs, and TARE routing."""

from __future__ import annotations

import pandas as pd

from red_explorer.app.plots import (
    distribution_figure,
    edit_heatmap_figure,
    editor_magnitude_figure,
    empty_figure,
    layer_magnitude_figure,
    routing_figure,
    usage_figure,
)
from red_explorer.app.ui.handlers.common import Choices, pick_run, run_choices
from red_explorer.app.ui.session import Session
from red_explorer.engine.analysis import edit_matrix, edit_summary, edit_values, layer_magnitudes, top_dimensions

NONE = "(none)"
EDIT_METHODS = ("red",)


def choices(session: Session, current_a: str | None = None, current_b: str | None = None):
    """Dropdown choices: run A (RED runs), run B (RED runs or none), TARE run."""
    workbench = session.workbench
    first = run_choices(workbench, EDIT_METHODS, current_a)
    second_labels = [NONE] + first.choices
    second = Choices(second_labels, current_b if current_b in second_labels else NONE)
    return first, second, run_choices(workbench, ("tare",))


def _panel(session: Session, label: str) -> tuple:
    """(per-layer bars, scale heatmap, bias heatmap) of one RED run."""
    edits = session.workbench.red_edits(label)
    panels = [layer_magnitude_figure(layer_magnitudes(edits), f"{label}: per layer")]
    for vector, title in (("scale", "scale − 1"), ("bias", "bias")):
        if not any(edit.has_scale if vector == "scale" else edit.has_bias for edit in edits):
            panels.append(empty_figure(f"{label} learns no {vector}"))
            continue
        rows, matrix = edit_matrix(edits, vector)
        panels.append(edit_heatmap_figure(rows, matrix, f"{label}: {title} (layer × dimension)"))
    return tuple(panels)


def _summary(label: str, edits) -> str:
    numbers = edit_summary(edits)
    return (
        f"**{label}**: {numbers['sites']} edited sites, {numbers['parameters']:,} learned values · "
        f"mean \\|scale − 1\\| {numbers['mean_abs_scale_minus_1']:.4f} (max {numbers['max_abs_scale_minus_1']:.3f}) · "
        f"mean \\|bias\\| {numbers['mean_abs_bias']:.4f} (max {numbers['max_abs_bias']:.3f})"
    )


def top_table(edits, k: int = 12) -> pd.DataFrame:
    return pd.DataFrame(
        [
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
    )


def inspect(session: Session, label_a: str | None, label_b: str | None = None):
    """Run A (and optionally B) side by side: (summary, A layers, A scale, A bias, B layers, B scale, B bias,
    distribution of A's values, A's most-edited dimensions)."""
    workbench = session.workbench
    label_a = pick_run(workbench, label_a, EDIT_METHODS)
    edits_a = workbench.red_edits(label_a)
    summary = [_summary(label_a, edits_a)]
    if label_b and label_b != NONE:
        panel_b = _panel(session, label_b)
        summary.append(_summary(label_b, workbench.red_edits(label_b)))
    else:
        panel_b = tuple(empty_figure("Pick a second run to compare side by side") for _ in range(3))
    distribution = distribution_figure(edit_values(edits_a), f"{label_a}: distribution of the learned values")
    return ("\n\n".join(summary), *_panel(session, label_a), *panel_b, distribution, top_table(edits_a))


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
    if session.workbench.run_labels(EDIT_METHODS):
        return inspect(session, label_a, label_b)
    figures = [empty_figure("Train a RED run in the Train tab to see what it learned") for _ in range(7)]
    return ("*No RED run in this session yet.*", *figures, pd.DataFrame())
