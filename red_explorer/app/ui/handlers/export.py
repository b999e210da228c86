"""Export tab: download a run's edits, the merged model, a control vector or a notebook, import edits, a snippet."""

from __future__ import annotations

from pathlib import Path

from red_explorer.app.exploring import Explorer
from red_explorer.app.ui.handlers.common import EXPECTED_ERRORS, pick_run, run_choices
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.session import Session
from red_explorer.core.layer_ranges import layer_ranges
from red_explorer.core.registry import METHODS
from red_explorer.explore.control_vector import NeedsBiasOnly

BIAS_ONLY = "bias only, layers ≥ 1"  # the Export tab's control-vector option
RETRAIN_WHERE = {  # where a run is trained again without what a control vector cannot hold
    "scale": "in the Train tab, RED vectors: “bias only”",
    "layer 0": "in the Train tab, Layers: from 1 up, e.g. 1-29",
}
EXPORTABLE = METHODS  # every registered method: edits, an adapter or a whole model


def choices(session: Session, current: str | None = None):
    """Every run; unless one is chosen, the latest RED run (every download takes it, the control vector too)."""
    return run_choices(session.workbench, EXPORTABLE, current, prefer=("red",))


def export_edits(session: Session, label: str | None):
    """(zip path of the run's edits, Python snippet that applies it)."""
    workbench = session.workbench
    label = pick_run(workbench, label)
    archive = workbench.export_edits_zip(label)
    return str(archive), workbench.python_snippet(label, archive.name)


def export_merged(session: Session, label: str | None) -> tuple[str, str]:
    """(zip path of a plain checkpoint with the edits folded in, status); a clear error when merging is impossible."""
    workbench = session.workbench
    label = pick_run(workbench, label)
    archive = workbench.export_merged_zip(label)
    return str(archive), f"**Merged model of {plain(label)}** ready: {plain(archive.name)} (a plain checkpoint)."


def export_control_vector(session: Session, label: str | None, bias_only: bool = False) -> tuple[str, str]:
    """(path of a control-vector GGUF of a RED run, status: the layers it steers and what it left out)."""
    workbench = session.workbench
    label = pick_run(workbench, label, ("red",))
    try:
        exported = Explorer(workbench).control_vector(label, bool(bias_only))
    except NeedsBiasOnly as error:
        raise ValueError(bias_only_advice(error, f"tick “{BIAS_ONLY}” here")) from error
    status = f"**Control vector of {plain(label)}** ready: {layer_ranges(exported.layers)}"
    if exported.dropped:
        status += "; left out: " + "; ".join(plain(part) for part in exported.dropped)
    return str(exported.path), status + ". Use it with `llama-cli --control-vector FILE.gguf`."


def bias_only_advice(error: NeedsBiasOnly, export_where: str) -> str:
    """A control vector's refusal with its two ways out, each saying where in the app to take it."""
    return error.advice(export_where, RETRAIN_WHERE[error.part])


def export_notebook(session: Session, label: str | None) -> tuple[str, str]:
    """(path of a notebook that retrains the run with the library, status: what it holds)."""
    workbench = session.workbench
    label = pick_run(workbench, label)
    path = workbench.export_notebook(label)
    return str(path), (
        f"**Notebook of {plain(label)}** ready: {plain(path.name)}. It loads the base and the data, trains with the "
        "same method, settings and seed, plots what it learned per layer and compares answers with the base."
    )


def export_failed(session: Session):
    """After a refused download: (no file, the reason, kept on the page until the next download)."""
    reason = plain(session.last_error or "The download was not made.")
    return None, f"✕ **{reason}**"


def snippet(session: Session, label: str | None) -> str:
    workbench = session.workbench
    return workbench.python_snippet(pick_run(workbench, label))


def import_edits(session: Session, archive: str | None):
    """Load an edits zip onto a copy of the base model: (status, run choices with the new run selected)."""
    if not archive:
        raise ValueError("upload the .zip of an edits folder first")
    workbench = session.workbench
    try:
        run = workbench.import_edits_zip(archive)
    except EXPECTED_ERRORS as error:
        raise ValueError(f"{Path(archive).name} was not loaded: {error}. {_runs_now(session)}") from error
    status = f"**Loaded {plain(run.label)}**: it is now available in Compare, Inspect and Export."
    return status, run_choices(workbench, EXPORTABLE, run.label)


NAMES_LISTED = 5  # an error lists this many run names at most (the Export tab lists them all)


def _runs_now(session: Session) -> str:
    labels = session.workbench.run_labels()
    if not labels:
        return "You have no runs on this model yet."
    more = f" and {len(labels) - NAMES_LISTED} more (see Your runs below)" if len(labels) > NAMES_LISTED else ""
    return f"Your runs on this model: {', '.join(labels[-NAMES_LISTED:])}{more}."


def restore_after_failure(session: Session, current: str | None):
    """After a refused zip: (status with the reason, the session's runs as they are, the upload box cleared)."""
    reason = plain(session.last_error or "The zip was not loaded.")
    return f"✕ **{reason}**", run_choices(session.workbench, EXPORTABLE, current), None


def chosen(session: Session, label: str | None) -> tuple[str, None, None, None, str]:
    """Another run was chosen: (its snippet, no edits, merged or control-vector file, no status): a download made
    for the run chosen before would be the wrong one."""
    return snippet_if_any(session, label), None, None, None, ""


def snippet_if_any(session: Session, label: str | None) -> str:
    """The snippet of the chosen run, or a hint while there is none."""
    if not (label or session.workbench.run_labels(EXPORTABLE)):
        return "# Train a run (or load edits) first; the code to apply its edits appears here."
    return snippet(session, label)
