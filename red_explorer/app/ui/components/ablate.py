"""Ablations tab widgets: the paper's grid or a learning-rate sweep, shared settings, Run/Stop, tables and charts."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.sweeping import DEFAULT_METHODS, METHOD_CHOICES, rates_preview
from red_explorer.app.ui.components.train import wire_length_note
from red_explorer.app.ui.events import busy_click, ui_event
from red_explorer.app.ui.handlers import ablate as handlers
from red_explorer.app.ui.handlers import common as common_handlers
from red_explorer.app.ui.handlers import data as data_handlers
from red_explorer.app.ui.handlers import sweep as sweep_handlers
from red_explorer.app.ui.texts import EPOCHS_LABEL, MAX_STEPS_LABEL, TARE_SENTENCE
from red_explorer.choice.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_STEPS
from red_explorer.core.registry import REGISTRY
from red_explorer.runs.labels import short_number

SWEEP_INTRO = (
    "#### A learning-rate sweep: each method at its best rate\n"
    "Each ticked method trains at every rate of its grid from the same frozen base, with the same steps, data "
    "and seed; every point is kept as a run (Inspect, Compare and Export list it). The chart puts the validation "
    "metric against the rate (★ the best per method); the method card puts each method at its best rate with "
    "what it cost (peak memory on a GPU only). Stop ends the sweep after the point under way."
)


def _rate(method: str) -> str:
    return short_number(REGISTRY[method].default_learning_rate)


def build(state: gr.State, max_length: gr.Slider, concurrency_limit: int) -> dict:
    """The tab; ``max_length`` is the Data tab's slider (one max length for Data, Train and Ablations)."""
    with gr.Tab("Ablations", id="ablations") as tab:
        mode = gr.Radio(list(handlers.MODES), value=handlers.MODES[0], label="Mode", elem_id="ablation-mode")
        with gr.Column() as paper_settings:
            gr.Markdown(
                "#### The paper's ablations (Tables 6 and 7) on your data\n"
                "Each row trains from the same frozen base with its method's usual learning rate "
                f"(RED/TARE {_rate('red')}, LoRA {_rate('lora')}); the chart puts the validation metric against the "
                "cost. " + TARE_SENTENCE
            )
            rows = gr.CheckboxGroup(
                list(handlers.ROWS), value=handlers.DEFAULT_ROWS, label="Rows to run", elem_id="ablation-rows"
            )
        sweep = _sweep_settings()
        with gr.Row():
            max_steps = gr.Number(
                DEFAULT_MAX_STEPS, precision=0, minimum=0, label=MAX_STEPS_LABEL, elem_id="ablation-steps"
            )
            epochs = gr.Number(1, minimum=0.1, label=EPOCHS_LABEL, elem_id="ablation-epochs")
            batch_size = gr.Number(
                DEFAULT_BATCH_SIZE, precision=0, minimum=1, label="Batch size", elem_id="ablation-batch"
            )
            seed = gr.Number(0, precision=0, label="Seed")
        note = gr.Markdown(data_handlers.length_line(None, 128), elem_id="ablation-length-note")
        with gr.Row() as paper_buttons:
            run = gr.Button("Run ablation", variant="primary", elem_id="ablation-button", scale=3)
            stop = gr.Button("Stop", variant="stop", scale=1, elem_id="ablation-stop")
        with gr.Row(visible=False) as sweep_buttons:
            run_sweep = gr.Button("Run sweep", variant="primary", elem_id="sweep-button", scale=3)
            stop_sweep = gr.Button("Stop", variant="stop", scale=1, elem_id="sweep-stop")
        with gr.Column() as paper_results:
            status = gr.HTML(label="Ablation status", elem_id="ablation-status")
            table = gr.Dataframe(headers=handlers.COLUMNS, label="Results", elem_id="ablation-table")
            chart = gr.Plot(show_label=False, label="Metric against trainable parameters", elem_id="ablation-plot")
        sweep_outputs, sweep_results = _sweep_results()
    loop = [max_steps, batch_size, max_length, epochs, seed]
    job = busy_click(
        run,
        "Ablation running… (Stop ends it)",
        ui_event(handlers.ablate),
        [state, rows, *loop],
        [status, table, chart],
        api_name="ablate",
        show_progress_on=[status],
        concurrency_id="training",
        concurrency_limit=concurrency_limit,
    )
    job.failure(
        ui_event(handlers.restore_after_failure),
        [state],
        [status, table, chart],
        api_visibility="private",
        show_progress="hidden",
    )
    stop.click(ui_event(common_handlers.stop), [state], [status], queue=False, api_visibility="private")
    sweep_inputs = [state, sweep["methods"], sweep["rates"], *loop, sweep["forgetting"]]
    _wire_sweep(sweep, sweep_inputs, sweep_outputs, run_sweep, stop_sweep, concurrency_limit)
    panels = [paper_settings, paper_buttons, paper_results, sweep["panel"], sweep_buttons, sweep_results]
    mode.change(ui_event(handlers.show_mode), [mode], panels, api_visibility="private", show_progress="hidden")
    wire_length_note(tab, state, max_length, note)
    return {"tab": tab}


def _sweep_settings() -> dict:
    """The sweep's choices: methods from the registry, the rates ('auto' or a list) and what they make."""
    with gr.Column(visible=False) as panel:
        gr.Markdown(SWEEP_INTRO)
        methods = gr.CheckboxGroup(
            METHOD_CHOICES,
            value=DEFAULT_METHODS,
            label="Methods to sweep",
            info="Every method there is; full fine-tuning keeps a whole model on disk for each of its points.",
            elem_id="sweep-methods",
        )
        with gr.Row():
            rates = gr.Textbox(
                "auto",
                label="Learning rates: auto (each method's usual rate × 0.1 .. 10) or comma-separated, e.g. 1e-3, 1e-2",
                elem_id="sweep-rates",
                scale=3,
            )
            forgetting = gr.Checkbox(
                True, label="Measure forgetting (general-text loss before/after)", elem_id="sweep-forgetting", scale=1
            )
        preview = gr.Markdown(rates_preview(DEFAULT_METHODS, "auto"), elem_id="sweep-preview")
    return {"panel": panel, "methods": methods, "rates": rates, "forgetting": forgetting, "preview": preview}


def _sweep_results() -> tuple[list, gr.Column]:
    """Status, the metric-against-rate chart, the method card (table and figure), results.json and results.md."""
    with gr.Column(visible=False) as column:
        status = gr.HTML(label="Sweep status", elem_id="sweep-status")
        chart = gr.Plot(show_label=False, label="Metric against learning rate", elem_id="sweep-plot")
        card = gr.Dataframe(
            headers=sweep_handlers.CARD_TABLE_COLUMNS,
            label="Method card: each method at its best rate",
            elem_id="sweep-card",
        )
        figure = gr.Plot(show_label=False, label="Method card", elem_id="sweep-card-plot")
        files = gr.File(
            file_count="multiple", label="results.json and results.md", interactive=False, elem_id="sweep-files"
        )
    return [status, chart, card, figure, files], column


def _wire_sweep(sweep: dict, inputs: list, outputs: list, run: gr.Button, stop: gr.Button, limit: int) -> None:
    run.click(
        ui_event(sweep_handlers.sweep),
        inputs,
        outputs,
        api_name="sweep",
        show_progress_on=[outputs[0]],
        concurrency_id="training",
        concurrency_limit=limit,
    ).failure(
        ui_event(sweep_handlers.restore_after_failure),
        [inputs[0]],
        outputs,
        api_visibility="private",
        show_progress="hidden",
    )
    stop.click(ui_event(common_handlers.stop), [inputs[0]], [outputs[0]], queue=False, api_visibility="private")
    preview = ui_event(sweep_handlers.preview)
    for changed in (sweep["methods"], sweep["rates"]):
        changed.change(
            preview,
            [sweep["methods"], sweep["rates"]],
            [sweep["preview"]],
            api_visibility="private",
            show_progress="hidden",
        )
