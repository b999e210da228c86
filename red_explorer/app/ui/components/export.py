"""Export tab widgets: download edits or the merged model, a snippet to apply the edits, import edits from a zip."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.kept_runs import restart_note
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import export as handlers
from red_explorer.app.ui.handlers import runs, shares

CHECK = dict(api_visibility="private", show_progress="hidden")  # a refusal check: no outputs to paint "Error"

BIAS_ONLY_LABEL = f"Control vector: {handlers.BIAS_ONLY} (leave out a scale part and layer 0, and say so)"


def build(state: gr.State, show_cli_runs: bool = False) -> dict:
    with gr.Tab("Export", id="export") as tab:
        gr.Markdown(
            "#### Take the edits with you\n"
            "**Edits** are tiny (RED: two vectors per layer, as safetensors + JSON). The **merged model** folds "
            "them into the weights (`W' = diag(scale)·W`, `b' = scale ⊙ b + bias`): a plain checkpoint with zero "
            "inference overhead. TARE edits depend on the token, so they cannot be merged. A RED run's FFN bias is "
            "a llama.cpp **control vector** (`--control-vector`): a vector added to the residual stream after each "
            "layer from 1 up."
        )
        run = gr.Dropdown([], label="Run", allow_custom_value=True, elem_id="export-run")
        with gr.Row():
            edits_button = gr.Button("Download edits (.zip)", variant="primary", elem_id="export-edits")
            merged_button = gr.Button("Download merged model (.zip)", elem_id="export-merged")
            vector_button = gr.Button("Download control vector (.gguf)", elem_id="export-control-vector")
            notebook_button = gr.Button("Download as notebook (.ipynb)", elem_id="export-notebook")
        bias_only = gr.Checkbox(False, label=BIAS_ONLY_LABEL, elem_id="export-bias-only")
        with gr.Row():
            edits_file = gr.File(label="Edits", elem_id="edits-file")
            merged_file = gr.File(label="Merged model", elem_id="merged-file")
            vector_file = gr.File(label="Control vector", elem_id="control-vector-file")
            notebook_file = gr.File(label="Notebook (reproduces the run)", elem_id="notebook-file")
        status = gr.Markdown(elem_id="export-status")
        snippet = gr.Code(language="python", label="Apply the downloaded edits in Python", elem_id="snippet")
        gr.Markdown("#### Load edits from a zip")
        with gr.Row():
            upload = gr.File(label="Edits zip", file_types=[".zip"], type="filepath", elem_id="import-file")
            import_status = gr.Markdown(label="Import status", elem_id="import-status")
        your_runs = _runs_section(state, run, show_cli_runs)
    edits_button.click(ui_event(handlers.export_edits), [state, run], [edits_file, snippet], api_name="export")
    failed = dict(api_visibility="private", show_progress="hidden")
    merged = merged_button.click(
        ui_event(handlers.export_merged), [state, run], [merged_file, status], api_name="export_merged"
    )
    merged.failure(ui_event(handlers.export_failed), [state], [merged_file, status], **failed)
    vector = vector_button.click(
        ui_event(handlers.export_control_vector),
        [state, run, bias_only],
        [vector_file, status],
        api_name="export_control_vector",
    )
    vector.failure(ui_event(handlers.export_failed), [state], [vector_file, status], **failed)
    notebook = notebook_button.click(
        ui_event(handlers.export_notebook), [state, run], [notebook_file, status], api_name="export_notebook"
    )
    notebook.failure(ui_event(handlers.export_failed), [state], [notebook_file, status], **failed)
    run.change(lambda: None, None, [notebook_file], queue=False, api_visibility="private")  # made for another run
    imported = upload.upload(
        ui_event(handlers.import_edits), [state, upload], [import_status, run], api_name="import_edits"
    )
    imported.success(ui_event(runs.overview), [state], [your_runs["overview"]], api_visibility="private")
    imported.failure(
        ui_event(handlers.restore_after_failure),
        [state, run],
        [import_status, run, upload],
        api_visibility="private",
        show_progress="hidden",
    )
    chosen_outputs = [snippet, edits_file, merged_file, vector_file, status]
    run.change(ui_event(handlers.chosen), [state, run], chosen_outputs, api_visibility="private")
    tab.select(ui_event(handlers.choices), [state, run], [run], queue=False, api_visibility="private")
    tab.select(ui_event(runs.overview), [state], [your_runs["overview"]], api_visibility="private")
    tab.select(ui_event(runs.local_choices), [state], [your_runs["local"]], api_visibility="private")
    tab.select(_links, [state], your_runs["links"], api_visibility="private")
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
    with gr.Row(visible=False, elem_id="run-delete-confirm") as confirm:  # a delete cannot be undone: asked first
        sure_button = gr.Button("Yes, delete it", variant="stop", elem_id="run-delete-sure")
        cancel_button = gr.Button("Cancel", elem_id="run-delete-cancel")
    with gr.Row(visible=show_cli_runs):
        local = gr.Dropdown([], label="Runs saved from the command line (local only)", elem_id="local-runs")
        import_button = gr.Button("Copy into my runs", elem_id="local-import")
    # a refusal is checked by an event without outputs: its toast says why, and the run list is not painted "Error"
    rename_button.click(ui_event(runs.may_rename), [state, run], None, **CHECK).success(
        ui_event(runs.rename), [state, run, new_label], [shown, run], api_name="rename_run"
    )
    delete_button.click(ui_event(runs.may_delete), [state, run], None, **CHECK).success(
        ui_event(runs.ask_delete), [state, run], [confirm, sure_button], **CHECK
    )
    checked = sure_button.click(ui_event(runs.may_delete), [state, run], None, **CHECK)
    deleted = checked.success(ui_event(runs.delete), [state, run], [shown, run], api_name="delete_run")
    hide = dict(fn=lambda: gr.update(visible=False), inputs=None, outputs=[confirm], **CHECK, queue=False)
    for asked_no_more in (deleted.then, deleted.failure, checked.failure, cancel_button.click, run.change):
        asked_no_more(**hide)  # deleted, refused, cancelled, or another run picked: the next delete asks again
    import_button.click(ui_event(runs.import_local), [state, local], [shown, run], api_visibility="private")
    links = _share_section(state, run)
    deleted.success(_links, [state], links, api_visibility="private")  # deleting a run ends its links
    return {"overview": shown, "local": local, "links": links}


def _share_section(state: gr.State, run: gr.Dropdown) -> list:
    """Share the chosen run by link (read-only for whoever opens it), list the owner's links, revoke one."""
    with gr.Row():
        share_button = gr.Button("Share (read-only link)", elem_id="run-share")
        link = gr.Textbox(label="Link to the chosen run", interactive=False, buttons=["copy"], elem_id="share-link")
    listed = gr.Markdown(shares.NO_LINKS, elem_id="share-links")
    with gr.Row():
        chosen = gr.Dropdown([], label="Share link to revoke", elem_id="share-revoke-choice")
        revoke_button = gr.Button("Revoke", variant="stop", elem_id="share-revoke")
    share_button.click(_share, [state, run], [link, listed, chosen], api_visibility="private")
    revoke_button.click(_revoke, [state, chosen], [listed, chosen, link], api_visibility="private")
    return [listed, chosen]


# the links use the address the owner's page was opened at (the request's headers), so these take gr.Request
def _share(session, label, request: gr.Request):
    """Share the chosen run: (its link, the owner's links, the links to revoke)."""
    return ui_event(shares.share)(session, label, shares.app_url(request.headers))


def _revoke(session, token, request: gr.Request):
    """Revoke the chosen link: (the owner's links, the links to revoke, no link shown)."""
    return ui_event(shares.revoke)(session, token, shares.app_url(request.headers))


def _links(session, request: gr.Request):
    """(The owner's links, the links to revoke)."""
    return ui_event(shares.links)(session, shares.app_url(request.headers))
