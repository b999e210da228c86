"""What every handler shares: plain markers for the UI (choices, hidden, notices), progress, number formatting."""

from __future__ import annotations

import contextvars
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING

from red_explorer.app.colours import next_run_colour, run_colours, text_colour
from red_explorer.app.kept_runs import SessionRun, same_base
from red_explorer.app.model_registry import ModelKey
from red_explorer.app.workbench import Workbench
from red_explorer.runs.gallery import LEAD_RUN

if TYPE_CHECKING:
    from red_explorer.app.ui.session import Session

Progress = Callable[..., None]
POLL_SECONDS = 1.0
EXPECTED_ERRORS = (ValueError, OSError, KeyError)  # the user's input was refused: shown as a message
LATEST_SHOWN = 3  # runs ticked by default where every run would be too many (Compare, the loss plot)
GROUP_MARK = " › "  # between a run's group and its label in the run lists
ROW_COLOURS = "row_colours"  # DataFrame.attrs key: each row's colour (its run's fixed colour), shown in column one
COLUMN_DIGITS = "column_digits"  # DataFrame.attrs key: column name → decimals shown (in a table with ROW_COLOURS)


@dataclass
class Choices:
    """New choices (and value) for a dropdown or checkbox group; the UI turns it into gr.update.

    ``names`` gives the name shown for a choice where it differs from the value ("group › label").
    """

    choices: list[str] = field(default_factory=list)
    value: str | list[str] | None = None
    names: dict[str, str] = field(default_factory=dict)

    def shown(self) -> list[str] | list[tuple[str, str]]:
        """The choices as the UI lists them: plain values, or (shown name, value) pairs when names differ."""
        if not self.names:
            return list(self.choices)
        return [(self.names.get(choice, choice), choice) for choice in self.choices]


@dataclass
class Visible:
    """Show or hide an output (e.g. the bias panel of a run that learns no bias); used by private UI events only."""

    shown: bool


@dataclass
class ColumnWidths:
    """The width of each column of a table (e.g. "50%"); used by private UI events only."""

    widths: list[str]


@dataclass
class Notice:
    """The outputs, plus a warning the user should see (as a message box) while they stay valid."""

    outputs: object
    warning: str


def plural(number: int, word: str, many: str | None = None) -> str:
    """'1 row', '2 rows' (``many`` for irregular plurals)."""
    return f"{number:,} {word if number == 1 else many or word + 's'}"


SWEEP_JOB = "sweep"  # the job a sweep runs as (Session.running); Stop ends it between points


def stop(session: Session) -> str:
    """Ask this page's running job to stop: a sweep after its current point, training or an ablation after its step."""
    if session.job is None:
        return status_html(
            "Nothing is running: **Stop** ends training or an ablation after its current step, a sweep after its point."
        )
    session.workbench.stop()
    when = "point" if session.job == SWEEP_JOB else "step"
    return status_html(f"**Stopping** the {session.job} after this {when}…")


def status_html(text: str, fraction: float | None = None) -> str:
    """A status line (``**bold**`` allowed) as HTML, with a progress bar when ``fraction`` is given."""
    body = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escape(text))
    bar = ""
    if fraction is not None:
        percent = max(0.0, min(1.0, fraction)) * 100
        bar = f'<div class="red-bar"><div style="width: {percent:.1f}%"></div></div>'
    return f'<div class="red-status">{body}{bar}</div>'


def no_progress(*args, **kwargs) -> None:
    """A progress reporter that reports nothing (handlers called outside the app)."""


def given_progress(progress: Progress | None) -> Progress:
    """``progress``, or ``no_progress`` when none is given. Not ``progress or ...``: a gr.Progress that tracks
    nothing yet has length 0, so it is falsy, and the page's progress overlay would never show."""
    return no_progress if progress is None else progress


def pick_run(workbench: Workbench, label: str | None, methods: tuple[str, ...] | None = None) -> str:
    """The chosen run label, or the latest run (of ``methods``) when none is chosen."""
    if label:
        return label
    labels = workbench.run_labels(methods)
    if not labels:
        kinds = "/".join(method.upper() for method in methods) + " " if methods else ""
        raise ValueError(f"no {kinds}run on this model yet: train one in the Train tab")
    return labels[-1]


def other_model_name(run: SessionRun, key: ModelKey) -> str:
    """The base model a run was trained on, as the Model tab takes it (with its task when that differs)."""
    base = run.record.base
    return base.spec if base.task == key.task else f"{base.spec}, {base.task}"


def grouped(runs: list[SessionRun]) -> list[SessionRun]:
    """The runs in order, except that the runs of one group (an ablation, a sweep) stay together where the
    group's first run is."""
    buckets: dict[str, list[SessionRun]] = {}
    for run in runs:
        buckets.setdefault(f"group {run.group}" if run.group else f"run {run.id}", []).append(run)
    return [run for bucket in buckets.values() for run in bucket]


def latest(workbench: Workbench, count: int = LATEST_SHOWN) -> list[str]:
    """The labels of this model's ``count`` most recent runs, oldest first."""
    return workbench.run_labels()[-count:]


def run_name(run: SessionRun, other_model: str | None = None) -> str:
    """A run as the run lists show it: 'group › label', and '(other model: NAME)' for a run of another base."""
    name = f"{run.group}{GROUP_MARK}{run.label}" if run.group else run.label
    return f"{name} (other model: {other_model})" if other_model else name


def run_choices(
    workbench: Workbench,
    methods: tuple[str, ...] | None = None,
    keep: str | None = None,
    other_models: bool = True,
    prefer: tuple[str, ...] = (),
) -> Choices:
    """The owner's runs (of ``methods``) for a run list: this model's runs with each group together, then the
    runs of other base models ("(other model: NAME)": choosing one says to load that model). The value is
    ``keep`` when it is a run of this model, else this model's latest run of the ``prefer`` methods (a tab's
    actions that take only those), else its latest run; the user's own runs before the gallery's."""
    key = workbench.training_key().resolved()
    every = [run for run in workbench.all_runs() if methods is None or run.spec.method in methods]
    here = [run for run in every if same_base(run.record, key)]
    elsewhere = [run for run in every if not same_base(run.record, key)] if other_models else []
    elsewhere.sort(key=lambda run: other_model_name(run, key))  # stable: oldest first within one model
    labels = [run.label for run in grouped(here)]
    names = {run.label: run_name(run) for run in here}
    names |= {run.label: run_name(run, other_model_name(run, key)) for run in elsewhere}
    mine = [run for run in here if not run.gallery] or here  # a gallery run is the choice only when there is no other
    preferred = [run for run in mine if run.spec.method in prefer] or mine
    preferred = sorted(preferred, key=lambda run: run.gallery and run.label == LEAD_RUN)  # the gallery's lead last
    value = keep if keep in labels else (preferred[-1].label if preferred else None)
    choices = labels + [run.label for run in grouped(elsewhere)]
    return Choices(choices, value, {label: name for label, name in names.items() if name != label})


def colours(workbench: Workbench) -> dict[str, str]:
    """Each of the owner's runs (any base model) by label → its fixed colour (``run_colours``)."""
    runs = workbench.all_runs()
    by_id = run_colours([(run.id, run.spec.method) for run in runs])
    return {run.label: by_id[run.id] for run in runs}


def colour_to_be(workbench: Workbench, method: str) -> str:
    """The colour the next kept ``method`` run will have (a run still training is drawn in it)."""
    return next_run_colour(method, len([run for run in workbench.own_runs() if run.spec.method == method]))


def cell_text(value) -> str:
    """A table cell as shown: empty for None or NaN, numbers in their shortest form (0.3, 1.2e-05), else str."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fixed_digits(digits: int):
    """A cell formatter with ``digits`` decimals (3.0 → '3.0', not '3'), empty for None or NaN."""

    def text(value) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return cell_text(value)
        return f"{value:.{digits}f}"

    return text


def coloured(frame):
    """A table whose rows carry colours (``frame.attrs[ROW_COLOURS]``) as a pandas Styler: the first cell of each
    row in its colour (darkened to be read on white: ``text_colour``), the columns of
    ``frame.attrs[COLUMN_DIGITS]`` (name → decimals) with that many decimals; any other table as it is."""
    colours = frame.attrs.get(ROW_COLOURS) if hasattr(frame, "attrs") else None
    if not colours or len(colours) != len(frame) or frame.empty:
        return frame
    first = frame.columns[0]

    def colour_column(column):
        return [f"color: {text_colour(colour)}; font-weight: 600" for colour in colours]

    digits = {name: fixed_digits(places) for name, places in frame.attrs.get(COLUMN_DIGITS, {}).items()}
    styled = frame.style.apply(colour_column, subset=[first]).format(cell_text)
    return styled.format(digits) if digits else styled


def count(value: int) -> str:
    """12,345 → '12.3K'."""
    for divisor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= divisor:
            return f"{value / divisor:.3g}{suffix}"
    return str(value)


def megabytes(value: int) -> str:
    return f"{value / 2**20:,.0f} MB"


def optional_int(value) -> int | None:
    """A number box's value as an int, where empty or 0 means None."""
    if value in (None, ""):
        return None
    number = int(value)
    return number if number > 0 else None


class Worker(threading.Thread):
    """Runs one long engine call in the background and keeps its result or its error.

    The call runs in a copy of the starting thread's context, so a gr.Progress it reports to (which finds its
    event through context variables) still reaches the page's progress overlay.
    """

    def __init__(self, call: Callable[[], object]):
        super().__init__(daemon=True)
        self.call, self.result, self.error = call, None, None
        self.context = contextvars.copy_context()

    def run(self) -> None:
        try:
            self.result = self.context.run(self.call)
        except BaseException as error:  # re-raised in the UI thread by follow()
            self.error = error


def follow(workbench: Workbench, call: Callable[[], object], poll: float | None = None):
    """Run ``call`` in a thread, yielding None every ``poll`` seconds while it runs; return its result.

    If the consumer stops listening (the page went away), the workbench's job is asked to stop.
    """
    poll = POLL_SECONDS if poll is None else poll
    worker = Worker(call)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(poll)
            if worker.is_alive():
                yield
    finally:
        if worker.is_alive():
            workbench.stop()
    if worker.error is not None:
        raise worker.error
    return worker.result


def stream(ticks, render: Callable[[], object]):
    """Yield ``render()`` after every tick of a ``follow`` generator; return the followed call's result."""
    while True:
        try:
            next(ticks)
        except StopIteration as end:
            return end.value
        yield render()


def train_options(epochs, max_steps, batch_size, max_length, seed, eval_every=None, learning_rate=None):
    """TrainOptions from the values of the UI's number boxes (empty or 0 steps: whole epochs)."""
    from red_explorer.app.options import TrainOptions

    return TrainOptions(
        learning_rate=float(learning_rate) if learning_rate else None,
        epochs=float(epochs or 1.0),
        max_steps=optional_int(max_steps),
        batch_size=int(batch_size),
        max_length=int(max_length),
        seed=int(seed or 0),
        eval_every=optional_int(eval_every),
    )
