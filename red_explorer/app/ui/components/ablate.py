"""Ablations tab widgets: rows of the grid, settings, Run/Stop, the results table and metric-vs-parameters chart."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.ui.components.train import wire_length_note
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import ablate as handlers
from red_explorer.app.ui.handlers import data as data_handlers
from red_explorer.app.ui.handlers import train as train_handlers
from red_explorer.app.ui.texts import EPOCHS_LABEL, MAX_STEPS_LABEL, TARE_SENTENCE


def build(state: gr.State, max_length: gr.Slider, concurrency_limit: int) -> dict:
    """The tab; ``max_length`` is the Data tab's slider (one max length for Data, Train and Ablations)."""
    with gr.Tab("Ablations", id="ablations") as tab:
        gr.Markdown(
            "#### The paper's ablations (Tables 6 and 7) on your data\n"
            "Each row trains from the same frozen base with its method's usual learning rate "
            "(RED/TARE 1e-2, LoRA 3e-4); the chart puts the validation metric against the cost. " + TARE_SENTENCE
        )
        rows = gr.CheckboxGroup(
            list(handlers.ROWS), value=handlers.DEFAULT_ROWS, label="Rows to run", elem_id="ablation-rows"
        )
        with gr.Row():
            max_steps = gr.Number(30, precision=0, minimum=0, label=MAX_STEPS_LABEL, elem_id="ablation-steps")
            epochs = gr.Number(1, minimum=0.1, label=EPOCHS_LABEL, elem_id="ablation-epochs")
            batch_size = gr.Number(8, precision=0, minimum=1, label="Batch size", elem_id="ablation-batch")
            seed = gr.Number(0, precision=0, label="Seed")
        note = gr.Markdown(data_handlers.length_line(None, 128), elem_id="ablation-length-note")
        with gr.Row():
            run = gr.Button("Run ablation", variant="primary", elem_id="ablation-button", scale=3)
            stop = gr.Button("Stop", variant="stop", scale=1, elem_id="ablation-stop")
        status = gr.HTML(label="Ablation status", elem_id="ablation-status")
        table = gr.Dataframe(headers=handlers.COLUMNS, label="Results", elem_id="ablation-table")
        chart = gr.Plot(show_label=False, label="Metric against trainable parameters", elem_id="ablation-plot")
    run.click(
        ui_event(handlers.ablate),
        [state, rows, max_steps, batch_size, max_length, epochs, seed],
        [status, table, chart],
        api_name="ablate",
        show_progress_on=[status],
        concurrency_id="training",
        concurrency_limit=concurrency_limit,
    ).failure(
        ui_event(handlers.restore_after_failure),
        [state],
        [status, table, chart],
        api_visibility="private",
        show_progress="hidden",
    )
    stop.click(ui_event(train_handlers.stop), [state], [status], queue=False, api_visibility="private")
    wire_length_note(tab, state, max_length, note)
    return {"tab": tab}
