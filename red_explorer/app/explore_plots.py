"""Pure renderers for the Explore tab: dose-response and layer-importance figures, the token drift strip (HTML)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from red_explorer.app.colours import BASE_COLOUR, RED
from red_explorer.app.plots import empty_figure, styled_layout
from red_explorer.explore.drift import TokenChange, TokenDrift
from red_explorer.explore.layers import LayerImportance
from red_explorer.explore.strength import DosePoint

KL_COLOUR = "#1b2631"  # near black: not the colour of any run
DOSE_HINT = "Press “Dose-response over α” to see the validation loss and KL at each strength"
LAYERS_HINT = "Press “Measure per layer” to see which layers a RED run needs (a few validation passes per layer)"
KEEP_ONE_PATTERN = {"shape": "/", "solidity": 0.45}  # "only this layer" bars: hatched in the run's colour


def placeholder_figure(hint: str) -> go.Figure:
    """The figure a plot shows before it is computed: the one-line ``hint`` of what to press."""
    return empty_figure(hint, height=260)


def dose_response_figure(
    points: Sequence[DosePoint], title: str = "Dose-response", colour: str | None = None
) -> go.Figure:
    """Validation loss (left axis, in the run's ``colour``) and mean KL(edited_α ‖ base) (right axis) against α."""
    colour = colour or RED
    strengths = [point.strength for point in points]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(
        go.Scatter(
            x=strengths,
            y=[point.loss for point in points],
            name="validation loss",
            mode="lines+markers",
            line=dict(color=colour),
        ),
        secondary_y=False,
    )
    figure.add_trace(
        go.Scatter(
            x=strengths,
            y=[point.kl_from_base for point in points],
            name="mean KL from base",
            mode="lines+markers",
            line=dict(color=KL_COLOUR, dash="dash"),
        ),
        secondary_y=True,
    )
    figure.add_vline(x=0, line=dict(color="#7f8c8d", dash="dot"))
    figure.add_vline(x=1, line=dict(color=colour, dash="dot"))
    figure.update_xaxes(title_text="strength α (0 = base, 1 = trained)")
    figure.update_yaxes(title_text="validation loss", secondary_y=False)
    figure.update_yaxes(title_text="mean KL (nats)", secondary_y=True)
    return styled_layout(figure, title)


def layer_importance_figure(
    importance: LayerImportance, title: str = "Which layers matter", colour: str | None = None
) -> go.Figure:
    """Per layer: the validation loss with that layer's edit removed, and with only that layer kept.

    Dashed lines mark the base loss (no edit) and the whole run's loss: a leave-one-out bar far above
    the run line is a layer the run needs; a keep-one bar far below the base line helps on its own.
    The axis starts at 0, so bar heights compare; both bars are in the run's ``colour`` (keep-one hatched).
    """
    layers = [f"layer {effect.layer_index}" for effect in importance.layers]
    figure = go.Figure()
    figure.add_trace(
        go.Bar(x=layers, y=[effect.loss_without for effect in importance.layers], name="without this layer")
    )
    figure.add_trace(go.Bar(x=layers, y=[effect.loss_only for effect in importance.layers], name="only this layer"))
    colour = colour or RED
    figure.data[0].marker.color = colour  # leave-one-out: solid; keep-one: hatched, so the legend tells them apart
    figure.data[1].marker = dict(
        color="white", line=dict(color=colour, width=1.5), pattern=KEEP_ONE_PATTERN | {"fgcolor": colour}
    )
    figure.add_hline(
        y=importance.base_loss,
        line=dict(color=BASE_COLOUR, dash="dash"),
        annotation_text=f"base {importance.base_loss:.3f}",
    )
    figure.add_hline(
        y=importance.run_loss, line=dict(color="#1b2631", dash="dot"), annotation_text=f"run {importance.run_loss:.3f}"
    )
    high = max([importance.base_loss, importance.run_loss, *figure.data[0].y, *figure.data[1].y])
    figure.update_yaxes(title_text="validation loss", range=[0.0, high * 1.12 or 1.0])
    return styled_layout(figure, title, barmode="group")


def _changes(changes: Sequence[TokenChange]) -> str:
    return ", ".join(
        f"{change.token!r} {change.base_probability:.2f}→{change.edited_probability:.2f}" for change in changes
    )


def _tooltip(drift: TokenDrift, position: int) -> str:
    lines = [
        f"KL {drift.kl[position]:.4f} nats (next-token distribution after this token)",
        f"rose: {_changes(drift.rises[position])}",
        f"fell: {_changes(drift.falls[position])}",
    ]
    if drift.routing_sites and drift.editor_choice is not None:
        for site, chosen in zip(drift.routing_sites, drift.editor_choice[position], strict=True):
            lines.append(f"{site}: editors {', '.join(str(editor) for editor in chosen)}")
    return "\n".join(lines)


def token_strip_html(drift: TokenDrift, high: float | None = None) -> str:
    """One span per token, background red with opacity KL / ``high`` (default: the largest KL of the text).

    The tooltip (``title``) lists the candidates whose probability rose and fell most, and for TARE
    the editors the token chose at every site. Prompt tokens are underlined.
    """
    high = high if high is not None else max(drift.kl, default=0.0)
    spans = []
    for position, token in enumerate(drift.tokens):
        strength = min(1.0, drift.kl[position] / high) if high > 0 else 0.0
        underline = "border-bottom: 2px solid #aab7b8;" if drift.is_prompt[position] else ""
        style = f"background: rgba(192, 57, 43, {strength:.3f}); {underline}padding: 1px 0; border-radius: 3px;"
        spans.append(
            f'<span class="drift-token" title="{escape(_tooltip(drift, position))}" style="{style}">'
            f"{escape(token).replace(chr(10), '↵<br>')}</span>"
        )
    prompt_tokens = sum(drift.is_prompt)
    legend = (
        f'<div class="red-note">{prompt_tokens} prompt tokens (underlined), then '
        f"{len(drift.tokens) - prompt_tokens} tokens of the text. "
        f"Colour: KL(run ‖ base) of the next-token prediction, darkest = {high:.4f} nats. "
        "Hover a token for what rose and fell.</div>"
    )
    return f'<div class="drift-strip" style="white-space: pre-wrap; line-height: 1.9;">{"".join(spans)}</div>{legend}'
