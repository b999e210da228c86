"""Your runs (Export tab): every kept run of this browser, its size and group, rename, delete, local CLI runs."""

from __future__ import annotations

from red_explorer.app.kept_runs import SessionRun, same_base
from red_explorer.app.ui.handlers.common import Choices, Visible, colours, grouped, other_model_name, run_choices
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.session import Session
from red_explorer.core.registry import METHODS
from red_explorer.runs.size import human_bytes
from red_explorer.runs.store import folder_bytes

ALL_METHODS = METHODS


def _line(run: SessionRun, colour: str) -> str:
    swatch = f"<span style='color: {colour}'>■</span>"
    group = f" · in {plain(run.group)}" if run.group else ""
    kind = " · a whole model, kept on disk and loaded only when used" if run.whole_model else ""
    kind += " · from the gallery, read-only" if run.gallery else " · shared with you, read-only" if run.shared else ""
    size = human_bytes(run.record.method_bytes)
    return f"- {swatch} **{plain(run.label)}** ({run.spec.entry.title}, {size}){group}{kind}"


def overview(session: Session) -> str:
    """Markdown: the quota line, one line per run of this model (its colour, method, size, group), then the runs
    of other base models, under the model to load to use them."""
    workbench = session.workbench
    fixed = colours(workbench)
    lines = [f"**Disk:** {workbench.usage()}. Runs are kept until you delete them; nothing is removed for you."]
    lines += [_line(run, fixed[run.label]) for run in grouped(list(workbench.runs.values()))]
    if len(lines) == 1:
        lines.append("*No runs for this model yet: train one in the Train tab.*")
    key = workbench.training_key().resolved()
    others: dict[str, list[SessionRun]] = {}
    for run in workbench.all_runs():
        if not same_base(run.record, key):
            others.setdefault(other_model_name(run, key), []).append(run)
    for model, runs in sorted(others.items()):
        lines.append(f"\n**Other model: {plain(model)}** (load it in the Model tab to use these runs)")
        lines += [_line(run, fixed[run.label]) for run in grouped(runs)]
    return "\n".join(lines)


def rename(session: Session, label: str | None, new_label: str | None):
    """Rename the chosen run: (overview, run choices with it selected)."""
    if not label:
        raise ValueError("pick the run to rename first")
    run = session.workbench.rename_run(label, new_label or "")
    return overview(session), run_choices(session.workbench, ALL_METHODS, run.label)


def may_rename(session: Session, label: str | None) -> None:
    """Refuse, with its reason, a rename the chosen run does not allow (before the page's run list is touched)."""
    _may(session, label, "rename")


def may_delete(session: Session, label: str | None) -> None:
    """Refuse, with its reason, deleting a run that is not the owner's (before the page's run list is touched)."""
    _may(session, label, "delete")


def _may(session: Session, label: str | None, doing: str) -> None:
    if not label:
        raise ValueError(f"pick the run to {doing} first")
    session.workbench.own_run(label, doing)


def ask_delete(session: Session, label: str | None) -> tuple[Visible, str]:
    """The page asks before it deletes: (the confirmation shown, its button's text naming the run and its size)."""
    _may(session, label, "delete")
    return Visible(True), f"Yes, delete '{label}' ({_disk_size(session, label)}) for good"


def _disk_size(session: Session, label: str) -> str:
    """What the run's folder holds on disk (its files, record and metrics): what deleting it frees."""
    return human_bytes(folder_bytes(session.workbench.run(label).record.path))


def delete(session: Session, label: str | None):
    """Delete the chosen run from disk (the only way a run goes away): (overview headed by what was deleted and the
    space freed, run choices)."""
    if not label:
        raise ValueError("pick the run to delete first")
    workbench = session.workbench
    freed = _disk_size(session, label)
    workbench.delete_run(label)
    done = f"✓ Deleted run **{plain(label)}** ({freed} freed)."
    return f"{done}\n\n{overview(session)}", run_choices(workbench, ALL_METHODS)


def local_choices(session: Session) -> Choices:
    """The runs saved from the command line (owner "local") for this model; none on a hosted Space."""
    labels = [run.label for run in session.workbench.local_runs()]
    return Choices(labels, None)


def import_local(session: Session, label: str | None):
    """Copy a command-line run into this browser's runs: (overview, run choices with the copy selected)."""
    if not label:
        raise ValueError("pick a run saved from the command line first")
    run = session.workbench.import_local(label)
    return overview(session), run_choices(session.workbench, ALL_METHODS, run.label)
