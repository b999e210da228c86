"""Inspect tab widgets: two RED runs side by side (per layer, heatmaps), distributions, top dimensions, TARE routing."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import inspect as handlers
from red_explorer.app.ui.texts import TARE_SENTENCE

ROUTING_TEXT = "The restaurant near the river serves cheap Italian food."
# a plot drawn before its row's other cell appeared keeps its width until the window resizes: tell plotly it did
RELAYOUT = "() => { setTimeout(() => window.dispatchEvent(new Event('resize')), 50); }"


PANELS = (("layers-plot", "per layer"), ("scale-heatmap", "scale − 1"), ("bias-heatmap", "bias"))


def _panels() -> tuple[list, list]:
    """(run A's panels, run B's): one row per quantity, A's left of B's (per layer, then scale − 1, then bias)."""
    panel_a, panel_b = [], []
    for elem, title in PANELS:
        with gr.Row(equal_height=True):
            for side, panel in (("A", panel_a), ("B", panel_b)):
                label = f"Run {side}: {title}"
                panel.append(gr.Plot(show_label=False, label=label, elem_id=f"{elem}-{side.lower()}"))
    return panel_a, panel_b


def _tare_section(state: gr.State) -> gr.Dropdown:
    with gr.Accordion("TARE: which editor each token uses", open=False):
        gr.Markdown(TARE_SENTENCE)
        with gr.Row(equal_height=True):
            tare_run = gr.Dropdown([], label="TARE run", allow_custom_value=True, scale=1)
            text = gr.Textbox(ROUTING_TEXT, label="Text to route", scale=3)
            route = gr.Button("Route", scale=1)
        routing = gr.Plot(show_label=False, label="Token × layer: top editor", elem_id="routing-plot")
        with gr.Row():
            usage = gr.Plot(show_label=False, label="Editor usage", elem_id="usage-plot")
            editors = gr.Plot(show_label=False, label="Editor magnitudes", elem_id="editor-plot")
    route.click(
        ui_event(handlers.tare_view), [state, tare_run, text], [routing, usage, editors], api_name="tare_routing"
    )
    return tare_run


def build(state: gr.State) -> dict:
    with gr.Tab("Inspect", id="inspect") as tab:
        gr.Markdown(
            "#### What RED learned: how far each layer's edit is from the identity (scale = 1, bias = 0)\n"
            "Two runs side by side share their axes and colour scales, so their bars and colours compare directly."
        )
        with gr.Row(equal_height=False):
            run_a = gr.Dropdown([], label="Run A", allow_custom_value=True, elem_id="inspect-run-a")
            run_b = gr.Dropdown([], label="Run B (side by side)", allow_custom_value=True, elem_id="inspect-run-b")
            with gr.Column(scale=0, min_width=140):
                show = gr.Button("Show", variant="primary", elem_id="inspect-button")
        summary = gr.Markdown(label="Summary", elem_id="inspect-summary")
        panel_a, panel_b = _panels()
        with gr.Row():  # side by side on a wide page, stacked on a narrow one
            distribution = gr.Plot(
                show_label=False, label="Distribution of run A's values", elem_id="distribution-plot", min_width=400
            )
            top = gr.Dataframe(
                headers=handlers.TOP_COLUMNS,
                label="Run A: most-edited dimensions",
                elem_id="top-dimensions",
                min_width=400,
            )
        tare_run = _tare_section(state)
    outputs = [summary, *panel_a, *panel_b, distribution, top]
    heatmaps = [panel_a[1], panel_a[2], panel_b[1], panel_b[2]]
    visibility = dict(
        fn=ui_event(handlers.panels_shown),
        inputs=[state, run_a, run_b],
        outputs=heatmaps,
        api_visibility="private",
        show_progress="hidden",
    )
    shown = show.click(ui_event(handlers.inspect), [state, run_a, run_b], outputs, api_name="inspect")
    shown.success(**visibility).then(None, js=RELAYOUT)
    shown.failure(  # a refused run leaves no panel of the run shown before
        ui_event(handlers.restore_after_failure), [state], outputs, api_visibility="private", show_progress="hidden"
    )
    refresh = tab.select(
        ui_event(handlers.choices),
        [state, run_a, run_b],
        [run_a, run_b, tare_run],
        queue=False,
        api_visibility="private",
    )
    refresh.then(ui_event(handlers.inspect_if_any), [state, run_a, run_b], outputs, api_visibility="private").then(
        **visibility
    ).then(None, js=RELAYOUT)
    return {"tab": tab}
