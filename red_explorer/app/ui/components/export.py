"""Export tab widgets: download edits or the merged model, a snippet to apply the edits, import edits from a zip."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.kept_runs import restart_note
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import export as handlers
from red_explorer.app.ui.handlers import runs


def build(state: gr.State, show_cli_runs: bool = False) -> dict:
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
        your_runs = _runs_section(state, run, show_cli_runs)
    edits_button.click(ui_event(handlers.export_edits), [state, run], [edits_file, snippet], api_name="export")
    merged_button.click(ui_event(handlers.export_merged), [state, run], [merged_file], api_name="export_merged")
    imported = upload.upload(ui_event(handlers.import_edits), [state, upload], [status, run], api_name="import_edits")
    imported.success(ui_event(runs.overview), [state], [your_runs["overview"]], api_visibility="private")
    imported.failure(
        ui_event(handlers.restore_after_failure),
        [state, run],
        [status, run, upload],
        api_visibility="private",
        show_progress="hidden",
    )
    run.change(ui_event(handlers.chosen), [state, run], [snippet, edits_file, merged_file], api_visibility="private")
    tab.select(ui_event(handlers.choices), [state, run], [run], queue=False, api_visibility="private")
    tab.select(ui_event(runs.overview), [state], [your_runs["overview"]], api_visibility="private")
    tab.select(ui_event(runs.local_choices), [state], [your_runs["local"]], api_visibility="private")
    return {"tab": tab}


def _runs_section(state: gr.State, run: gr.Dropdown, show_cli_runs: bool) -> dict:
    """Your runs: the quota, every kept run, rename and delete the chosen one, import the command line's runs (shown
    only when the app shares them: ``python app.py --show-cli-runs`` on loopback)."""
    gr.Markdown("#### Your runs (kept in this browser's run store)")
    note = restart_note()
    if note:
        gr.Markdown(note, elem_id="runs-restart-note")
    shown = gr.Markdown(elem_id="runs-overview")
    with gr.Row():
        new_label = gr.Textbox(label="New name for the chosen run", elem_id="run-new-label")
        rename_button = gr.Button("Rename", elem_id="run-rename")
        delete_button = gr.Button("Delete run", variant="stop", elem_id="run-delete")
    with gr.Row(visible=show_cli_runs):
        local = gr.Dropdown([], label="Runs saved from the command line (local only)", elem_id="local-runs")
        import_button = gr.Button("Copy into my runs", elem_id="local-import")
    rename_button.click(ui_event(runs.rename), [state, run, new_label], [shown, run], api_name="rename_run")
    delete_button.click(ui_event(runs.delete), [state, run], [shown, run], api_name="delete_run")
    import_button.click(ui_event(runs.import_local), [state, local], [shown, run], api_visibility="private")
    return {"overview": shown, "local": local}
