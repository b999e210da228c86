"""Data tab widgets: upload or sample, split options, max length; detected format, preview, split sizes, lengths."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import data as handlers

FILE_TYPES = [".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet", ".txt"]
FORMATS_HELP = (
    "Columns are detected: `prompt`/`response`, `instruction`/`input`/`output`, `question`/`answer`, "
    "`messages` (chat), `text` (plain), or `text`/`label` and `sentence1`/`sentence2`/`label` for classification."
)


def _load_sample(session, sample, validation_fraction, max_rows, max_length):
    """Load a bundled sample (ignoring any upload)."""
    return handlers.load_data(session, None, sample, validation_fraction, max_rows, max_length)


def build(state: gr.State, max_length: gr.Slider) -> dict:
    with gr.Tab("Data", id="data") as tab:
        gr.Markdown("#### Your training data\n" + FORMATS_HELP)
        with gr.Row():
            upload = gr.File(label="Upload a data file", file_types=FILE_TYPES, type="filepath", elem_id="data-upload")
            with gr.Column():
                sample = gr.Dropdown(
                    handlers.sample_choices(),
                    value="restaurants_e2e.csv",
                    label="…or a bundled sample",
                    elem_id="data-sample",
                )
                with gr.Row():
                    validation = gr.Slider(0.05, 0.5, value=0.1, step=0.05, label="Validation share")
                    max_rows = gr.Number(0, precision=0, minimum=0, label="At most N rows (0 = all)")
                load = gr.Button("Load sample", variant="primary", elem_id="load-sample")
        with gr.Row():
            with gr.Column(min_width=420):
                summary = gr.Markdown(handlers.NO_DATA, label="Data summary", elem_id="data-summary")
            with gr.Column(min_width=420):
                max_length.render()
                lengths = gr.Plot(show_label=False, label="Token lengths", elem_id="length-plot")
        preview = gr.Dataframe(
            headers=[handlers.NO_DATA_COLUMN], label="Preview (training rows)", wrap=True, elem_id="data-preview"
        )
    outputs = [summary, preview, lengths]
    private = dict(api_visibility="private", show_progress="hidden")
    restore = dict(fn=ui_event(handlers.restore_after_failure), inputs=[state, max_length], outputs=[*outputs, upload])
    widths = dict(fn=ui_event(handlers.preview_widths), inputs=[state], outputs=[preview])
    show = dict(fn=ui_event(handlers.show_data), inputs=[state, max_length], outputs=outputs, **private)
    length_set = show | dict(fn=ui_event(handlers.length_set))  # and the slider kept with the last choice
    for loaded in (
        upload.upload(
            ui_event(handlers.load_data),
            [state, upload, sample, validation, max_rows, max_length],
            outputs,
            api_name="load_data",
        ),
        load.click(
            ui_event(_load_sample), [state, sample, validation, max_rows, max_length], outputs, api_name="load_sample"
        ),
    ):
        # the slider as it is now: it may have moved while the file was read (the load took the value it had)
        loaded.success(**length_set).then(**widths, **private)
        loaded.failure(**restore, **private).then(**widths, **private)
    max_length.change(**length_set)
    tab.select(**show).then(**widths, **private)  # what is loaded now, also when a demo loaded it
    tab.select(ui_event(handlers.loaded_sample), [state], [sample], **private)  # the sample it is, if one
    return {"tab": tab}
