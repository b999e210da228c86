"""The method card as a figure: quality against trainable parameters, marker size = time per step (pure plotly)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from red_explorer.app.colours import method_shades
from red_explorer.app.plots import log_ticks, styled_layout

SMALLEST_MARKER, LARGEST_MARKER = 12.0, 44.0
METRIC_TITLES = {"val_loss": "validation loss (lower is better)", "val_accuracy": "validation accuracy"}


def marker_sizes(seconds: Sequence[float | None]) -> list[float]:
    """Marker diameters whose area grows with seconds per step: 12 px (fastest) .. 44 px (slowest)."""
    known = [value for value in seconds if value]
    slowest = max(known, default=0.0)
    if slowest <= 0:
        return [SMALLEST_MARKER] * len(seconds)
    span = LARGEST_MARKER - SMALLEST_MARKER
    return [SMALLEST_MARKER + span * math.sqrt((value or 0.0) / slowest) for value in seconds]


def _hover(row: Mapping) -> str:
    forgetting = row.get("forgetting")
    return (
        f"<b>{row['label']}</b><br>lr %{{customdata[0]:g}}<br>%{{x:,}} trainable parameters<br>"
        f"{row['metric']} %{{y:.4f}}<br>%{{customdata[1]:.1f}} ms / step<br>"
        + ("forgetting n/a" if forgetting is None else "forgetting %{customdata[2]:+.4f}")
        + "<extra></extra>"
    )


def method_card_figure(rows: Sequence[Mapping], title: str = "Methods at their best learning rate") -> go.Figure:
    """One marker per method: x = trainable parameters (log axis), y = the validation metric after training.

    Marker area ∝ seconds per step; the hover adds the learning rate, time per step and forgetting
    (Δ general-text loss). ``rows`` are the method card's rows (``red_explorer.choice.card.card_rows``).
    """
    figure = go.Figure()
    sizes = marker_sizes([row.get("seconds_per_step") for row in rows])
    colours = method_shades([row["method"] for row in rows])
    for row, size, colour in zip(rows, sizes, colours, strict=True):
        milliseconds = (row.get("seconds_per_step") or 0.0) * 1000
        figure.add_trace(
            go.Scatter(
                x=[row["trainable_parameters"]],
                y=[row["after"]],
                mode="markers+text",
                name=row["label"],
                text=[row["label"]],
                textposition="top center",
                marker=dict(size=size, color=colour, opacity=0.8, line=dict(width=1, color="white")),
                customdata=[[row["learning_rate"], milliseconds, row.get("forgetting")]],
                hovertemplate=_hover(row),
            )
        )
    metric = rows[0]["metric"] if rows else "val_loss"
    counts = [row["trainable_parameters"] for row in rows]
    values, labels = log_ticks(min(counts) / 2, max(counts) * 2) if counts else ([], [])
    figure.update_xaxes(type="log", title_text="trainable parameters (log scale)", tickvals=values, ticktext=labels)
    figure.update_yaxes(title_text=METRIC_TITLES.get(metric, metric))
    return styled_layout(figure, title, height=420, showlegend=False)
