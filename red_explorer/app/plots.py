"""Pure plotly figures for the app: data in, ``plotly.graph_objects.Figure`` out."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from red_explorer.app.colours import METHOD_SHADES, RED, method_colour
from red_explorer.engine.analysis import EditorMagnitudes, LayerMagnitudes, RoutingTable

TEMPLATE = "plotly_white"
PALETTE = ("#c0392b", "#2471a3", "#7d3c98", "#d68910", "#17a589", "#566573", "#a93226", "#1f618d")
KIND_COLOURS = dict(zip(("ffn", "attn", "custom"), METHOD_SHADES["red"], strict=False))  # RED's sites: its reds
KIND_NAMES = {"ffn": "FFN output", "attn": "attention output", "custom": "custom sites"}
LAYER_AXES = {"scale": "mean |scale − 1|<br>(% of h)", "bias": "mean |bias|<br>(units of h)"}
TITLE_ROOM = 30  # px over the title: the plot's hover toolbar shows there, not over the title
LOSS_AREA = 260  # px: the loss plot's own area, whatever the number of runs in its legend
MESSAGE_LINE_CHARACTERS = 56  # a blank figure's message wraps here: it fits a half-width plot at 700 px
FONT = dict(family="Inter, Liberation Sans, Arial, sans-serif", size=13)


def styled_layout(figure: go.Figure, title: str, height: int = 360, **extra) -> go.Figure:
    figure.update_layout(
        title=dict(text=title, x=0.01, xanchor="left", yref="container", y=1.0, yanchor="top", pad=dict(t=TITLE_ROOM)),
        template=TEMPLATE,
        height=height + TITLE_ROOM,
        margin=dict(l=60, r=20, t=56 + TITLE_ROOM, b=48),
        font=FONT,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
        **extra,
    )
    return figure


def empty_figure(message: str, height: int = 300) -> go.Figure:
    """A blank figure that says why there is nothing to show (in lines short enough for a half-width plot)."""
    figure = go.Figure()
    text = "<br>".join(textwrap.wrap(message, MESSAGE_LINE_CHARACTERS)) or message
    figure.add_annotation(
        text=text, showarrow=False, font=dict(size=15, color="#7f8c8d"), x=0.5, y=0.5, xref="paper", yref="paper"
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return styled_layout(figure, "", height=height)


def loss_figure(
    runs: Mapping[str, tuple[Sequence[float], Sequence[dict]]],
    title: str = "Loss",
    colours: Mapping[str, str] | None = None,
) -> go.Figure:
    """Training loss per step (solid) and validation loss (dashed, markers) for each run label.

    ``colours`` fixes a label's colour (its run's colour, ``run_colours``); others take the palette in order.
    The legend has one entry per run (clicking it hides both its curves), and the plot grows with the runs,
    so that on a narrow page the legend never takes the plot's place. A run whose curves are the same as an
    earlier run's (a demo clicked again: same settings and seed) is drawn over it and says so in the legend.
    """
    figure = go.Figure()
    colours, first_with = colours or {}, {}
    for index, (label, (train_loss, eval_history)) in enumerate(runs.items()):
        colour = colours.get(label) or PALETTE[index % len(PALETTE)]
        steps = list(range(1, len(train_loss) + 1))
        curves = (tuple(train_loss), tuple((record["step"], record["loss"]) for record in eval_history))
        same = first_with.setdefault(curves, label)  # a run repeated with the same settings draws over the first
        figure.add_trace(
            go.Scatter(
                x=steps,
                y=list(train_loss),
                mode="lines" if len(train_loss) > 1 else "markers",  # one step has no line to draw
                name=f"{label} · train" + (f" (same curves as {same})" if same != label else ""),
                legendgroup=label,
                line=dict(color=colour),
            )
        )
        if eval_history:
            figure.add_trace(
                go.Scatter(
                    x=[record["step"] for record in eval_history],
                    y=[record["loss"] for record in eval_history],
                    mode="lines+markers",
                    name=f"{label} · validation",
                    legendgroup=label,
                    showlegend=False,
                    line=dict(color=colour, dash="dash"),
                    marker=dict(size=8, symbol="diamond"),
                )
            )
    last = max([len(train_loss) for train_loss, _ in runs.values()] + [0])
    step_title = "optimizer step (solid: training loss · dashed ◆: validation loss)"
    figure.update_xaxes(title_text=step_title, rangemode="tozero", tick0=0, dtick=step_tick(last))
    figure.update_yaxes(title_text="loss")
    axis, legend_height = 64, 24 * len(runs)  # px under the plot area: its axis, then a row per run at most
    styled_layout(figure, title, height=56 + LOSS_AREA + axis + legend_height)
    figure.update_layout(  # below the axis: long run labels wrap there instead of over the title
        margin=dict(l=60, r=20, t=56 + TITLE_ROOM, b=axis + legend_height),
        legend=dict(yanchor="top", y=-(axis - 8) / LOSS_AREA, xanchor="left", x=0.0),
    )
    return figure


def step_tick(last_step: int, most_ticks: int = 10) -> int:
    """A whole-number step between ticks (1, 2, 5, 10, 20, ...) that puts at most ``most_ticks`` on 0..last."""
    for magnitude in (10**power for power in range(7)):
        for factor in (1, 2, 5):
            if last_step / (factor * magnitude) <= most_ticks:
                return factor * magnitude
    return 10**7


def log_ticks(low: float, high: float, most_ticks: int = 8) -> tuple[list[float], list[str]]:
    """Tick values and labels for a log axis over [low, high]: 1-2-5 steps (10k, 20k, 50k) or, when that
    gives too many, one per power of ten; labels in short form (50k, 1M)."""
    low, high = max(low, 1e-12), max(high, low)
    powers = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    for factors in ((1, 2, 5), (1,)):
        values = [factor * 10.0**power for power in powers for factor in factors]
        values = [value for value in values if low <= value <= high]
        if len(values) <= most_ticks:
            break
    return values, [_short_tick(value) for value in values]


def _short_tick(value: float) -> str:
    for divisor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= divisor:
            return f"{value / divisor:g}{suffix}"
    return f"{value:g}"


def layer_magnitude_figure(
    magnitudes: Sequence[LayerMagnitudes],
    title: str = "What RED learned, per layer",
    vectors: Sequence[str] = ("scale", "bias"),
    y_max: Mapping[str, float] | None = None,
):
    """Bars per layer, one panel per learned vector: mean |scale − 1| (in % of h) and/or mean |bias| (in units of h),
    in RED's reds, a shade per site kind (a legend under the plot when there are two kinds).

    ``y_max`` fixes each panel's top (e.g. the larger of two runs shown side by side, so their bars compare).
    """
    figure = make_subplots(rows=len(vectors), cols=1, shared_xaxes=True, vertical_spacing=0.16)
    figure.update_layout(annotations=[])  # the panels' titles go on their y axes, left of the bars
    for row, field in enumerate(vectors, start=1):
        for item in magnitudes:
            name = KIND_NAMES.get(item.kind, item.kind)
            value = "%{y:.2%}" if field == "scale" else "%{y:.4f}"
            figure.add_trace(
                go.Bar(
                    x=item.layers,
                    y=getattr(item, field),
                    name=name,
                    legendgroup=item.kind,
                    showlegend=row == 1 and len(magnitudes) > 1,
                    marker_color=KIND_COLOURS.get(item.kind, RED),
                    hovertemplate=f"{name}, layer %{{x}}: {value}<extra></extra>",
                ),
                row=row,
                col=1,
            )
        axis = dict(title_text=LAYER_AXES[field], rangemode="tozero", tickformat="~%" if field == "scale" else "")
        if y_max and y_max.get(field):
            axis["range"] = [0, 1.05 * y_max[field]]
        figure.update_yaxes(**axis, row=row, col=1)
    dtick = 1 if max(_layer_count(magnitudes), 1) <= 16 else 2
    figure.update_xaxes(tickformat="d", dtick=dtick, showticklabels=True)  # every panel numbers its layers
    figure.update_xaxes(title_text="layer (0 = nearest the input)", row=len(vectors), col=1)
    figure.update_layout(barmode="group", bargap=0.15)
    styled_layout(figure, title, height=440)  # one height, so that two runs side by side line up
    legend = dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0.0)  # under the axis: no bar under it
    return figure.update_layout(margin=dict(b=84), legend=legend)


def _layer_count(magnitudes: Sequence[LayerMagnitudes]) -> int:
    return max((len(item.layers) for item in magnitudes), default=0)


def edit_heatmap_figure(
    row_labels: Sequence[str], matrix: np.ndarray, title: str, limit: float | None = None
) -> go.Figure:
    """A site × hidden-dimension heatmap of signed values, centred on zero (red up, blue down).

    The colours run over ±``limit`` (default: the largest |value|); give two runs the same limit to compare them.
    """
    limit = float(limit or np.abs(matrix).max()) or 1.0
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            y=list(row_labels),
            x=list(range(matrix.shape[1])),
            colorscale="RdBu_r",
            zmin=-limit,
            zmax=limit,
            colorbar=dict(thickness=12),
            hovertemplate="%{y}, dim %{x}: %{z:.4f}<extra></extra>",
        )
    )
    figure.update_xaxes(title_text="hidden dimension")
    figure.update_yaxes(autorange="reversed")
    return styled_layout(figure, title, height=max(300, 60 + 14 * len(row_labels)))


def distribution_figure(values: Mapping[str, np.ndarray], title: str = "Distribution of the learned values"):
    """Overlaid histograms of every learned value (e.g. 'scale − 1' and 'bias')."""
    figure = go.Figure()
    for index, (name, data) in enumerate(values.items()):
        figure.add_trace(
            go.Histogram(x=np.asarray(data), name=name, opacity=0.65, nbinsx=80, marker_color=PALETTE[index])
        )
    figure.update_layout(barmode="overlay")
    figure.update_xaxes(title_text="value")
    figure.update_yaxes(title_text="count")
    return styled_layout(figure, title)


def _short(count: int) -> str:
    for divisor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= divisor:
            return f"{count / divisor:.3g}{suffix}"
    return str(count)


def parameter_figure(counts: Mapping[str, int], total: int, title: str = "Trainable parameters"):
    """Horizontal bars on a log axis; each bar says its count and its share of the base model."""
    labels = list(counts)
    values = [counts[label] for label in labels]
    text = [f"{_short(value)} ({100 * value / total:.3g}%)" for value in values]
    colours = [method_colour(label.split()[0]) for label in labels]
    figure = go.Figure(
        go.Bar(x=values, y=labels, orientation="h", text=text, textposition="auto", marker_color=colours)
    )
    tick_values, tick_text = log_ticks(min(values), max(values))
    figure.update_xaxes(type="log", title_text="parameters (log scale)", tickvals=tick_values, ticktext=tick_text)
    figure.update_yaxes(autorange="reversed")
    return styled_layout(figure, title, height=80 + 48 * len(labels))


def ablation_figure(rows: Sequence[dict], title: str = "Metric against trainable parameters") -> go.Figure:
    """One marker per ablation row: validation metric after training against trainable parameters (log x)."""
    figure = go.Figure()
    for method in dict.fromkeys(row["method"] for row in rows):
        chosen = [row for row in rows if row["method"] == method]
        figure.add_trace(
            go.Scatter(
                x=[row["trainable_parameters"] for row in chosen],
                y=[row["after"] for row in chosen],
                text=[row["label"] for row in chosen],
                mode="markers+text",
                textposition="top center",
                name=method.upper(),
                marker=dict(size=13, color=method_colour(method), line=dict(width=1, color="white")),
            )
        )
    if rows:
        counts = [row["trainable_parameters"] for row in rows]
        low, high = np.log10(min(counts)) - 0.35, np.log10(max(counts)) + 0.35
        tick_values, tick_text = log_ticks(10**low, 10**high)
        figure.update_xaxes(range=[low, high], tickvals=tick_values, ticktext=tick_text)
        base = float(np.mean([row["before"] for row in rows]))
        figure.add_hline(y=base, line_dash="dot", line_color="#7f8c8d", annotation_text="before training")
        figure.update_yaxes(title_text=rows[0]["metric"].replace("_", " ") + " (after)")
    figure.update_xaxes(type="log", title_text="trainable parameters (log scale)")
    return styled_layout(figure, title, height=420)


def token_length_figure(lengths: Mapping[str, Sequence[int]], max_length: int | None = None) -> go.Figure:
    """Histogram of tokens per example for each split (shared bins), with the max-length cut marked."""
    figure = go.Figure()
    values = [value for split in lengths.values() for value in split]
    low, high = min(values, default=0), max([*values, max_length or 0], default=1)
    size = max(1, -(-(high - low + 1) // 30))  # about 30 bins over the data and the cut
    for index, (split, split_values) in enumerate(lengths.items()):
        figure.add_trace(
            go.Histogram(
                x=list(split_values),
                name=split,
                opacity=0.7,
                marker_color=PALETTE[index],
                xbins=dict(start=low - 0.5, end=high + size, size=size),
            )
        )
    if max_length:
        figure.add_vline(x=max_length, line_dash="dash", line_color=RED)
        figure.add_annotation(  # above the plot area, where no bar can be under it
            x=max_length,
            y=1.0,
            yref="paper",
            yanchor="bottom",
            text=f"max length {max_length}",
            showarrow=False,
            font=dict(color=RED, size=12),
        )
    figure.update_layout(barmode="overlay")
    figure.update_xaxes(title_text="tokens per example")
    figure.update_yaxes(title_text="examples")
    styled_layout(figure, "Token lengths")
    figure.update_layout(  # the legend one row higher than usual: the max-length label sits above the bars
        margin=dict(l=60, r=20, t=84 + TITLE_ROOM, b=48),
        legend=dict(yanchor="bottom", y=1.1, xanchor="right", x=1.0),
    )
    return figure


def routing_figure(table: RoutingTable, title: str = "Which editor each token uses") -> go.Figure:
    """Token × layer heatmap of each token's top editor (hover: its mixing weight)."""
    editors = int(table.usage.shape[1])
    colours = [PALETTE[i % len(PALETTE)] for i in range(editors)]
    scale = [[position / editors, colour] for i, colour in enumerate(colours) for position in (i, i + 1)]
    positions = list(range(len(table.tokens)))
    figure = go.Figure(
        go.Heatmap(
            z=table.top_editor,
            x=positions,
            y=table.site_labels,
            customdata=table.top_weight,
            zmin=-0.5,
            zmax=editors - 0.5,
            colorscale=scale,
            colorbar=dict(title="editor", tickvals=list(range(editors)), thickness=12),
            hovertemplate="%{y}, token %{x}: editor %{z} (weight %{customdata:.2f})<extra></extra>",
        )
    )
    figure.update_xaxes(tickvals=positions, ticktext=table.tokens, tickangle=-60, title_text="token")
    figure.update_yaxes(autorange="reversed")
    return styled_layout(figure, title, height=max(320, 120 + 16 * len(table.site_labels)))


def usage_figure(table: RoutingTable, title: str = "Editor usage (share of tokens)") -> go.Figure:
    """Per editor, the share of tokens that selected it, averaged over sites, with per-site spread on hover."""
    editors = list(range(table.usage.shape[1]))
    figure = go.Figure(
        go.Bar(
            x=[f"editor {e}" for e in editors],
            y=table.usage.mean(axis=0),
            marker_color=[PALETTE[e % len(PALETTE)] for e in editors],
            error_y=dict(type="data", array=table.usage.std(axis=0), visible=True),
        )
    )
    figure.update_yaxes(title_text="share of tokens (mean over layers)")
    return styled_layout(figure, title, height=320)


def editor_magnitude_figure(table: EditorMagnitudes, title: str = "TARE editors: distance from identity"):
    """Two site × editor heatmaps: mean |scale − 1| and mean |bias| of each editor."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("mean |scale − 1|", "mean |bias|"), horizontal_spacing=0.14)
    editors = [f"e{e}" for e in range(table.scale.shape[1])]
    for col, matrix in ((1, table.scale), (2, table.bias)):
        figure.add_trace(
            go.Heatmap(
                z=matrix,
                x=editors,
                y=table.site_labels,
                colorscale="Reds",
                colorbar=dict(thickness=10, x=0.43 if col == 1 else 1.0),
                hovertemplate="%{y}, %{x}: %{z:.4f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    figure.update_yaxes(autorange="reversed")
    return styled_layout(figure, title, height=max(320, 120 + 16 * len(table.site_labels)))
