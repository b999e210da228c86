"""Export tab widgets: download edits or the merged model, a snippet to apply the edits, import edits from a zip."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import export as handlers


def build(state: gr.State) -> dict:
    with gr.Tab("Export", id="export") as tab:
        gr.Markdown(
            "#### Take the edits with you\n"
            "**Edits** are tiny (RED: two vectors per layer, as safetensors + JSON). The **merged model** folds "
            "them into the weights (`W' = diag(scale)·W`, `b' = scale ⊙ b + bias`): a plain checkpoint with zero "
            "inference overhead. TARE edits depend on the token, so they cannot be merged."
        )
        run = gr.Dropdown([], label="Run", allow_custom_value=True, elem_id="export-run")
        with gr.Row():
            edits_button = gr.Button("Download edits (.zip)", variant="primary", elem_id="export-edits")
            merged_button = gr.Button("Download merged model (.zip)", elem_id="export-merged")
        with gr.Row():
            edits_file = gr.File(label="Edits", elem_id="edits-file")
            merged_file = gr.File(label="Merged model", elem_id="merged-file")
        snippet = gr.Code(language="python", label="Apply the downloaded edits in Python", elem_id="snippet")
        gr.Markdown("#### Load edits from a zip")
        with gr.Row():
            upload = gr.File(label="Edits zip", file_types=[".zip"], type="filepath", elem_id="import-file")
            status = gr.Markdown(label="Import status", elem_id="import-status")
    edits_button.click(ui_event(handlers.export_edits), [state, run], [edits_file, snippet], api_name="export")
    merged_button.click(ui_event(handlers.export_merged), [state, run], [merged_file], api_name="export_merged")
    upload.upload(ui_event(handlers.import_edits), [state, upload], [status, run], api_name="import_edits").failure(
        ui_event(handlers.restore_after_failure),
        [state, run],
        [status, run, upload],
        api_visibility="private",
        show_progress="hidden",
    )
    run.change(ui_event(handlers.snippet_if_any), [state, run], [snippet], api_visibility="private")
    tab.select(ui_event(handlers.choices), [state, run], [run], queue=False, api_visibility="private")
    return {"tab": tab}
