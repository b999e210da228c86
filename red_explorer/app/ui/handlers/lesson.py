"""The guided lesson: start, next, back, end, the step a reload opens again (kept per owner), and the gallery runs
a step picks for a user with no runs of their own."""

from __future__ import annotations

from red_explorer.app.lesson_progress import recall_step, remember_step
from red_explorer.app.lesson_text import FINISHED, STEPS, heading
from red_explorer.app.ui.handlers import data
from red_explorer.app.ui.handlers.common import EXPECTED_ERRORS, Visible
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.handlers.navigation import UNCHANGED
from red_explorer.app.ui.session import Session, is_browser_key
from red_explorer.runs.home import default_home

# Every handler returns: (start button shown, lesson panel shown, heading, text, target, Back shown, Next shown,
# then the run lists of SELECTORS) where target is "TAB BUTTON TEXT|ELEM_ID" of the tab the page opens and the
# control it points at ("" outside the lesson), Back is hidden on the first step and Next on the last, and each
# run list is the step's pick or left as it is.
SELECTORS = ("inspect", "compare", "explore")  # the tabs whose run list (Run A, the ticked runs, Run) a step sets
OUTSIDE = (Visible(True), Visible(False), "", "", "", UNCHANGED, UNCHANGED) + (UNCHANGED,) * len(SELECTORS)


def view(index: int | None, picks: tuple[str, ...] = ()) -> tuple:
    """The panel at step ``index`` (None: outside the lesson), the runs ``picks`` chosen in the step's tab."""
    if index is None:
        return OUTSIDE
    step = STEPS[index]
    text = step.text + (f"\n\n{FINISHED}" if index == len(STEPS) - 1 else "")
    value = (list(picks) if step.tab == "compare" else picks[0]) if picks else UNCHANGED
    selections = tuple(value if tab == step.tab else UNCHANGED for tab in SELECTORS)
    target, first, last = f"{step.tab_label}|{step.focus}", index == 0, index == len(STEPS) - 1
    shown = (Visible(not first), Visible(not last))  # Back, Next
    return Visible(False), Visible(True), f"### {heading(index)}", text, target, *shown, *selections


def gallery_picks(session: Session, index: int) -> tuple[str, ...]:
    """The gallery runs step ``index`` names that this model lists, when the user has no run of their own on it."""
    runs = session.workbench.runs
    if any(not run.gallery for run in runs.values()):
        return ()  # the tab's own choice: the user's latest run
    return tuple(label for label in STEPS[index].gallery if label in runs and runs[label].gallery)


def _adopt(session: Session, owner: str | None) -> None:
    """Use the browser's key before keeping a step: a click that beats the page load still keeps it where a reload
    looks."""
    if is_browser_key(owner):
        session.adopt_owner(owner)


def _go(session: Session, index: int | None) -> tuple:
    workbench = session.workbench
    remember_step(workbench.store.root, workbench.owner, index)
    return view(index, () if index is None else gallery_picks(session, index))


def _current(session: Session) -> int:
    workbench = session.workbench
    step = recall_step(workbench.store.root, workbench.owner, len(STEPS))
    return 0 if step is None else step


def start(session: Session, owner: str | None = None) -> tuple:
    """Open the lesson at its first step (``owner``: the key the browser keeps)."""
    _adopt(session, owner)
    return _go(session, 0)


def next_step(session: Session, owner: str | None = None) -> tuple:
    """The next step (the last one stays)."""
    _adopt(session, owner)
    return _go(session, min(_current(session) + 1, len(STEPS) - 1))


def previous_step(session: Session, owner: str | None = None) -> tuple:
    """The step before (the first one stays)."""
    _adopt(session, owner)
    return _go(session, max(_current(session) - 1, 0))


def end(session: Session, owner: str | None = None) -> tuple:
    """Close the lesson; a reload no longer opens it."""
    _adopt(session, owner)
    return _go(session, None)


def load_sample(session: Session, owner: str | None = None):
    """After a move: the step's sample loaded through the Data tab's handler when no data is loaded, so that its
    button works for a student who came straight from the steps before: (the step's text, saying so or why not; the
    Ablations tab's max-length line, on the data loaded now). Otherwise both are left as they are."""
    _adopt(session, owner)
    workbench = session.workbench
    index = recall_step(workbench.store.root, workbench.owner, len(STEPS))
    if index is None or not STEPS[index].sample or workbench.data is not None:
        return UNCHANGED, UNCHANGED
    name, text = STEPS[index].sample, view(index)[3]
    try:
        data.load_data(session, None, name, max_length=workbench.max_length)
    except EXPECTED_ERRORS as error:
        return f"{text}\n\n*{plain(str(error))} Load data in the **Data** tab first.*", UNCHANGED
    loaded = f"the bundled sample **{data.SAMPLES[name][0]}** ({name})"
    note = data.length_note(session, workbench.max_length)
    return f"{text}\n\n*No data was loaded, so the lesson loaded {loaded}; the **Data** tab shows it.*", note


def restore(owner: str | None) -> tuple:
    """Page load: the step the browser's owner (its key, kept in the browser) was at; outside the lesson, the page
    is left as it is (a lesson started while the page loaded stays open).

    It reads the key the browser sent rather than the session, which the page load is adopting meanwhile; the run
    lists stay as the tabs choose them."""
    step = recall_step(default_home() / "runs", owner, len(STEPS)) if is_browser_key(owner) else None
    return (UNCHANGED,) * len(OUTSIDE) if step is None else view(step)
