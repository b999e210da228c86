"""A learning-rate sweep as a figure: the validation metric against the rate per method, best marked (pure plotly)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from red_explorer.app.colours import method_shades
from red_explorer.app.method_card_plot import METRIC_TITLES
from red_explorer.app.plots import styled_layout
from red_explorer.runs.labels import short_number

BEST_SYMBOL = "star"


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _better(value: float, other: float, higher_is_better: bool) -> bool:
    return value > other if higher_is_better else value < other


def best_points(points: Sequence[Mapping], higher_is_better: bool) -> dict[int, Mapping]:
    """Per method spec (``spec_index``) the point that completed with the best finite metric after training.

    best = argmin_i after_i (loss) or argmax_i after_i (accuracy) over the spec's completed points,
    the rule of ``red_explorer.choice.sweep.run_sweep``.
    """
    best: dict[int, Mapping] = {}
    for point in points:
        if point["stopped_reason"] != "completed" or not _finite(point["after"]):
            continue
        champion = best.get(point["spec_index"])
        if champion is None or _better(point["after"], champion["after"], higher_is_better):
            best[point["spec_index"]] = point
    return best


def _hover(point: Mapping) -> str:
    return f"{point['label']}<br>lr {short_number(point['learning_rate'])}<br>{point['metric']} {point['after']:.4f}"


def sweep_figure(
    points: Sequence[Mapping], higher_is_better: bool = False, title: str = "Validation metric against learning rate"
) -> go.Figure:
    """One line per method spec: x = learning rate (log axis), y = its validation metric after training.

    Points are a sweep's records (``SweepResult.points``); a point whose metric is not a number (a diverged
    run) leaves a gap. The best point of each spec (``best_points``) carries a star and its own legend entry.
    """
    figure = go.Figure()
    best = best_points(points, higher_is_better)
    specs = {point["spec_index"]: point["method"] for point in points}
    for spec_index, colour in zip(specs, method_shades(list(specs.values())), strict=True):
        chosen = sorted((p for p in points if p["spec_index"] == spec_index), key=lambda p: p["learning_rate"])
        figure.add_trace(
            go.Scatter(
                x=[point["learning_rate"] for point in chosen],
                y=[point["after"] if _finite(point["after"]) else None for point in chosen],
                mode="lines+markers",
                name=chosen[0]["label"],
                line=dict(color=colour, width=2),
                marker=dict(size=9, color=colour),
                hovertext=[_hover(point) for point in chosen],
                hoverinfo="text",
            )
        )
        if spec_index in best:
            figure.add_trace(_best_trace(best[spec_index], colour))
    metric = points[0]["metric"] if points else "val_loss"
    rates = sorted({point["learning_rate"] for point in points})  # a tick per rate tried, as the rates are typed
    ticks = dict(tickvals=rates, ticktext=[short_number(rate) for rate in rates]) if rates else {}
    figure.update_xaxes(type="log", title_text="learning rate (log scale)", **ticks)
    figure.update_yaxes(title_text=METRIC_TITLES.get(metric, metric))
    return styled_layout(figure, title, height=420)


def _best_trace(point: Mapping, colour: str) -> go.Scatter:
    return go.Scatter(
        x=[point["learning_rate"]],
        y=[point["after"]],
        mode="markers",
        name=f"best {point['label']}: lr {short_number(point['learning_rate'])}",
        marker=dict(symbol=BEST_SYMBOL, size=20, color=colour, line=dict(width=1.5, color="white")),
        hovertext=[f"<b>best</b> {_hover(point)}"],
        hoverinfo="text",
    )
