"""Model tab widgets: model, task, device and dtype; the model's shape, its block diagram, parameters per method."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import model as handlers
from red_explorer.app.ui.texts import TARE_SENTENCE

MODEL_HELP = (
    "`default` = SmolLM2-135M-Instruct for **causal-lm**, and the MiniLM encoder (all-MiniLM-L6-v2) for "
    "**classification**; both are bundled and offline · `minilm` = the MiniLM encoder · "
    "or type a Hugging Face hub id or a local folder saved with `save_pretrained`."
)


def build(state: gr.State, status: gr.Markdown) -> dict:
    with gr.Tab("Model", id="model") as tab:
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
        load = gr.Button("Load model", variant="primary", elem_id="load-model")
        with gr.Row():
            with gr.Column(min_width=420):
                info = gr.Markdown(
                    "*Load a model to see its architecture.*", label="Model summary", elem_id="model-info"
                )
            with gr.Column(min_width=420):
                parameters = gr.Plot(show_label=False, label="Trainable parameters per method", elem_id="param-plot")
                gr.Markdown(TARE_SENTENCE, elem_classes=["red-note"])
        diagram = gr.HTML(label="Block diagram", elem_id="model-diagram")
    controls = [spec, task, device, dtype]
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
    return {"tab": tab, "task": task}
