"""Model tab widgets: one-minute demos; model, task, device and dtype; the memory it needs; its shape, diagram,
parameters."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.plots import empty_figure
from red_explorer.app.ui.events import group_busy_click, ui_event
from red_explorer.app.ui.handlers import model as handlers
from red_explorer.app.ui.texts import RED_EXPLANATION, TARE_EXPLANATION
from red_explorer.choice.defaults import DEFAULT_BATCH_SIZE

MODEL_HELP = (
    "`default` = SmolLM2-135M-Instruct for **causal-lm**, and the MiniLM encoder (all-MiniLM-L6-v2) for "
    "**classification**; both are bundled and offline · `minilm` = the MiniLM encoder · "
    "or type a Hugging Face hub id or a local folder saved with `save_pretrained`."
)

QUANTIZE_HELP = (
    "**Quantize** stores the frozen base in 8 or 4 bits: about 1/2 or 1/4 of bf16's memory on CUDA (bitsandbytes), "
    "less on CPU (torchao); 8 bits lose little quality, 4 bits more (most on small models); full fine-tuning and "
    "BitFit cannot train on it."
)

DEMOS_HELP = (
    "#### One-minute demos\nOne click loads the model and a bundled sample, trains for a few steps on this "
    "machine, and shows the change (Compare opens with the base model beside each run)."
)
PLAN_HELP = (
    "Estimated from the model's config alone, before anything loads: the weights in each precision, a RED "
    "training step at this batch size and the max length set under **Data**, and generation at the same size, "
    "against this machine's free memory."
)
COMPARE_IDS = ("compare-prompt", "compare-runs", "compare-prompt-shown", "compare-cards", "compare-table")


def _demos() -> tuple[list[gr.Button], gr.Markdown, gr.Plot]:
    gr.Markdown(f"{DEMOS_HELP}\n\n{handlers.demo_estimates()}", elem_id="demo-estimates")
    with gr.Row(equal_height=True):
        buttons = [gr.Button(name, variant="secondary", elem_id=f"demo-{key}") for name, key in handlers.demo_buttons()]
    result = gr.Markdown(elem_id="demo-result")
    loss = gr.Plot(
        empty_figure("A demo's loss curves appear here as it trains", height=200),
        show_label=False,
        label="Demo loss curves",
        elem_id="demo-loss",
    )
    with gr.Row():
        gr.Markdown(RED_EXPLANATION, elem_classes=["red-note"])
        gr.Markdown(TARE_EXPLANATION, elem_classes=["red-note"])
    return buttons, result, loss


def wire_demos(parts: dict, state: gr.State, tabs: gr.Tabs, compare_outputs: list) -> None:
    """Each demo button runs its preset; the outputs span this tab, the tabs and Compare (``COMPARE_IDS``)."""
    outputs = [parts["demo_result"], parts["demo_loss"], *parts["shown"], *parts["controls"][:2], tabs]
    outputs += compare_outputs
    buttons = parts["demo_buttons"]  # all greyed while one runs: a click on another would wait unseen, then run
    for index, button in enumerate(buttons):
        group_busy_click(
            button,
            buttons,
            ui_event(handlers.run_demo),
            [state, button],
            outputs,
            api_name="run_demo" if index == 0 else None,
            api_visibility="public" if index == 0 else "private",
            concurrency_id="training",
            show_progress="hidden",  # its own status line and bar say how far it is (one bar, not one per output)
        )


def _memory_plan(controls: list, max_length: gr.Slider, tab: gr.Tab) -> None:
    """The memory table, recomputed whenever the model, task, device, dtype, batch size or max length changes."""
    with gr.Row(equal_height=True):
        with gr.Column(scale=1, min_width=160):
            batch_size = gr.Number(
                DEFAULT_BATCH_SIZE, precision=0, minimum=1, label="Batch size", elem_id="plan-batch-size"
            )
        with gr.Column(scale=4):
            gr.Markdown(PLAN_HELP)
    table = gr.Markdown("*Choose a model to see the memory it needs.*", elem_id="memory-plan")
    spec, task, device, dtype, quantize = controls
    inputs = [spec, task, device, dtype, batch_size, max_length, quantize]
    changes = [control.change for control in (spec, task, device, dtype, quantize, batch_size, max_length)]
    gr.on(
        [*changes, tab.select],
        ui_event(handlers.memory_plan),
        inputs,
        [table],
        api_name="memory_plan",
        show_progress="hidden",
    )


def build(state: gr.State, status: gr.Markdown, max_length: gr.Slider) -> dict:
    with gr.Tab("Model", id="model") as tab:
        demo_buttons, demo_result, demo_loss = _demos()
        gr.Markdown("#### Choose the frozen base model\n" + MODEL_HELP)
        with gr.Row(equal_height=True):
            spec = gr.Dropdown(
                ["default", "minilm"],
                value="default",
                allow_custom_value=True,
                label="Model (pick or type a hub id / local path)",
                elem_id="model-spec",
                scale=3,
            )
            task = gr.Radio(["causal-lm", "classification"], value="causal-lm", label="Task", scale=2)
            device = gr.Dropdown(["auto", "cpu", "cuda", "mps"], value="auto", label="Device", scale=1)
            dtype = gr.Dropdown(["auto", "float32", "bfloat16", "float16"], value="auto", label="dtype", scale=1)
            quantize = gr.Dropdown(
                ["none", "8bit", "4bit"], value="none", label="Quantize", scale=1, elem_id="model-quantize"
            )
        gr.Markdown(QUANTIZE_HELP, elem_classes=["red-note"])  # under the row: as a control's info it wrapped narrow
        controls = [spec, task, device, dtype, quantize]
        with gr.Accordion("Memory before loading", open=True):
            _memory_plan(controls, max_length, tab)
        load = gr.Button("Load model", variant="primary", elem_id="load-model")
        with gr.Row():
            with gr.Column(min_width=420):
                info = gr.Markdown(
                    "*Load a model to see its architecture.*", label="Model summary", elem_id="model-info"
                )
            with gr.Column(min_width=420):
                parameters = gr.Plot(show_label=False, label="Trainable parameters per method", elem_id="param-plot")
        diagram = gr.HTML(label="Block diagram", elem_id="model-diagram")
    load.click(
        ui_event(handlers.load_model),
        [state, *controls],
        [info, diagram, parameters, status],
        api_name="load_model",
        concurrency_id="model",
        concurrency_limit=2,
    ).failure(
        ui_event(handlers.restore_after_failure),
        [state, *controls],
        [info, diagram, parameters, status, *controls],
        api_visibility="private",
        show_progress="hidden",
    )
    tab.select(  # the panels agree with the header (e.g. the model finished loading after the page did)
        ui_event(handlers.show_model),
        [state],
        [info, diagram, parameters],
        api_visibility="private",
        show_progress="hidden",
    )
    return {
        "tab": tab,
        "task": task,
        "demo_buttons": demo_buttons,
        "demo_result": demo_result,
        "demo_loss": demo_loss,
        "shown": [info, diagram, parameters, status],
        "controls": controls,
    }
