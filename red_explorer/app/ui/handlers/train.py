"""Train tab: train any registered methods one after another, with live loss curves, progress and a Stop;
the plot and the summary show the kept runs the user picks next to the new ones."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from html import escape

import pandas as pd

from red_explorer.app.kept_runs import RunFigures
from red_explorer.app.plots import empty_figure, loss_figure
from red_explorer.app.ui.handlers.common import (
    COLUMN_DIGITS,
    LATEST_SHOWN,
    ROW_COLOURS,
    Choices,
    Notice,
    colour_to_be,
    colours,
    count,
    follow,
    given_progress,
    latest,
    megabytes,
    run_choices,
    status_html,
    stream,
    train_options,
)
from red_explorer.app.ui.handlers.data import length_warning
from red_explorer.app.ui.handlers.train_methods import METHOD_CHOICES, build_specs, chosen_layers, learning_rates
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import SessionRun, Workbench
from red_explorer.choice.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_STEPS
from red_explorer.core.registry import MethodSpec
from red_explorer.engine.step_timing import StepTiming
from red_explorer.engine.training import EvalEvent, StepEvent

__all__ = ["METHOD_CHOICES", "build_specs", "restore_after_failure", "show", "shown_choices", "train"]
SUMMARY_COLUMNS = ["method", "trainable params", "% of model", "set-up (s)", "s/step", "train time (s)"]
SUMMARY_COLUMNS += ["val loss before", "val loss after", "stopped"]
SUMMARY_DIGITS = {"set-up (s)": 1, "s/step": 2, "train time (s)": 1, "val loss before": 4, "val loss after": 4}
SUMMARY_DIGITS |= {"accuracy before": 4, "accuracy after": 4}
NEXT_STEP = {  # where to look next after training a method
    "red": "See **Inspect** for what RED learned",
    "tare": "See **Inspect** (TARE section) for which editor each token uses",
}
IDLE = "<div class='red-status'><i>Pick methods and press Train. On a CPU a step takes a few seconds.</i></div>"
LOSS_TITLE = "Training and validation loss"
NONE_PICKED = "Pick runs in “Runs shown” to see their loss curves"


@dataclass
class LiveCurves:
    """Loss curves and step timings that the training thread appends to and the UI thread draws."""

    curves: dict[str, tuple[list[float], list[dict]]] = field(default_factory=dict)
    timings: dict[str, StepTiming] = field(default_factory=dict)  # label -> its live timing (the status line)
    last: StepEvent | None = None
    colours: dict[str, str] = field(default_factory=dict)  # label -> its run's fixed colour (``colours``)
    data: dict[str, str] = field(default_factory=dict)  # label -> the name of the data file it trained on

    def recorder(self, label: str, colour: str | None = None, clock=time.perf_counter):
        """A training callback that draws under ``label``, in ``colour`` (the colour the run will keep)."""
        train_loss, eval_history = self.curves.setdefault(label, ([], []))
        timing = self.timings[label] = StepTiming(clock())
        if colour:
            self.colours[label] = colour

        def record(event) -> None:
            if isinstance(event, StepEvent):
                train_loss.append(event.loss)
                timing.record(getattr(event, "seconds", 0.0), clock())
                self.last = event
            elif isinstance(event, EvalEvent):
                eval_history.append({"step": event.step} | event.metrics)

        return record

    def training_key(self, label: str) -> str:
        """The key a new run's curve is drawn under while it trains: its label, unless a kept run shown has it."""
        return label if label not in self.curves else f"{label} (training)"

    def add_endpoints(self, run: SessionRun, colour: str, trained_as: str | None = None) -> None:
        """Put the validation loss before (step 0) and after training (last step) on the run's curve.

        ``trained_as`` is the label the curve was drawn under while training; it takes the kept run's label.
        """
        if trained_as and trained_as != run.label and trained_as in self.curves:
            self.curves[run.label] = self.curves.pop(trained_as)
            self.timings[run.label] = self.timings.pop(trained_as)
            self.colours.pop(trained_as, None)
            self.data[run.label] = self.data.pop(trained_as, "")
        self.colours[run.label] = colour
        train_loss, history = self.curves.setdefault(run.label, ([], []))
        history[:] = with_endpoints(history, len(train_loss), run.result)

    def show(self, run: SessionRun, colour: str) -> None:
        """Draw a kept run from its record (loss per step, validation with its endpoints) in its fixed colour."""
        result = run.result
        history = with_endpoints(result.eval_history, len(result.train_loss), result)
        self.curves[run.label] = (list(result.train_loss), history)
        self.colours[run.label] = colour
        self.data[run.label] = (run.record.data or {}).get("name", "")

    def figure(self, empty: str = "The loss curves appear after the first step"):
        if not any(train for train, _ in self.curves.values()):
            return empty_figure(empty)
        names = {self.data.get(label) or "unknown data" for label in self.curves}
        on = f" on {names.pop()}" if len(names) == 1 else f" (runs on {len(names)} data files)"
        return loss_figure(self.curves, LOSS_TITLE + on, self.colours)


def with_endpoints(history: list[dict], last: int, result: RunFigures) -> list[dict]:
    """A validation history with the loss before training at step 0 and after training at step ``last``."""
    between = [record for record in history if 0 < record["step"] < last]
    return [{"step": 0} | result.metrics_before, *between, {"step": last} | result.metrics_after]


def _seconds(value: float | None, digits: int = 1):
    return None if value is None else round(value, digits)


def summary_table(runs: list[SessionRun], total_parameters: int, device: str = "cpu", colours=None) -> pd.DataFrame:
    """One row per finished run: cost (set-up, steady s/step, time: kept with the run) and the validation metric
    before and after.

    Peak memory is shown on a GPU only: on a CPU the process's resident memory is shared by everything in it,
    so its growth during one run is no per-run figure. ``attrs[ROW_COLOURS]`` holds each run's fixed colour
    (``colours``: label → colour).
    """
    colours = colours or {}
    on_gpu = device.startswith("cuda")
    rows = []
    for run in runs:
        result, record = run.result, run.record
        row = {
            "method": run.label,
            "trainable params": count(result.trainable_parameters),
            "% of model": f"{100 * result.trainable_parameters / total_parameters:.3g}%",
            "set-up (s)": _seconds(record.setup_seconds),
            "s/step": _seconds(record.seconds_per_step, 2),
            "train time (s)": round(result.train_seconds, 1),
        }
        if on_gpu:
            row["peak GPU memory"] = megabytes(result.peak_memory_bytes)
        row["val loss before"] = round(result.metrics_before["loss"], 4)
        row["val loss after"] = round(result.metrics_after["loss"], 4)
        if "accuracy" in result.metrics_after:
            row["accuracy before"] = round(result.metrics_before["accuracy"], 4)
            row["accuracy after"] = round(result.metrics_after["accuracy"], 4)
        row["stopped"] = result.stopped_reason
        rows.append(row)
    table = pd.DataFrame(rows, columns=None if rows else SUMMARY_COLUMNS)
    if all(run.label in colours for run in runs):
        table.attrs[ROW_COLOURS] = [colours[run.label] for run in runs]
    table.attrs[COLUMN_DIGITS] = SUMMARY_DIGITS  # 3.0 s reads "3.0", beside 4.79 and 17.6
    return table


def _status(spec: MethodSpec, index: int, total: int, live: LiveCurves, stopping: bool, key: str = "") -> str:
    event, timing = live.last, live.timings.get(key or spec.label)
    head = f"**Training {spec.label}** ({index + 1}/{total})"
    if stopping:
        where = f" (step {event.step}/{event.total_steps})" if event else ""
        return f"**Stopping** {spec.label} after this step…{where}"
    if event is None or timing is None:
        return f"{head}: setting up (attaching the method, first validation)…"
    return (
        f"{head}: step {event.step}/{event.total_steps} · loss {event.loss:.4f} · "
        f"{timing.per_step:.2f} s/step · set-up {timing.setup:.1f} s"
    )


def _done(runs: list[SessionRun], stopped: bool) -> str:
    parts = []
    for run in runs:
        before, after = run.result.metrics_before["loss"], run.result.metrics_after["loss"]
        parts.append(f"**{run.label}**: val loss {before:.4f} → {after:.4f} in {run.result.train_seconds:.1f} s")
    head = "**Stopped.**" if stopped else "**Done.**"
    hints = [NEXT_STEP[method] for method in dict.fromkeys(run.spec.method for run in runs) if method in NEXT_STEP]
    hints.append("**Compare** generates with each run next to the base model")
    return head + " " + "; ".join(parts) + ". " + "; ".join(hints) + "."


def _train_one(workbench: Workbench, spec, options, live: LiveCurves, progress, index: int, total: int, render):
    """Train one spec in a worker thread, yielding ``render(status)`` until it ends; returns the run.

    Its curve is drawn under ``live.training_key(spec.label)``, then under the kept run's label.
    """
    live.last = None
    key = live.training_key(spec.label)
    record = live.recorder(key, colour_to_be(workbench, spec.method))
    live.data[key] = workbench.data.name

    def tick():
        event = live.last
        fraction = (index + (event.step / event.total_steps if event else 0.0)) / total
        steps = f"{event.step}/{event.total_steps}" if event else "set-up"
        progress(fraction, desc=f"{spec.label}: step {steps}")
        stopping = workbench.stop_event.is_set()
        return render(status_html(_status(spec, index, total, live, stopping, key), fraction))

    ticks = follow(workbench, lambda: workbench.train(spec, options, record))
    run = yield from stream(ticks, tick)
    live.add_endpoints(run, colours(workbench)[run.label], key)
    return run


def _picked(workbench: Workbench, shown: list[str] | None) -> list[SessionRun]:
    """The runs of this model picked in "Runs shown" that have a training record, in the picker's order."""
    runs = workbench.runs
    return [runs[label] for label in shown or [] if label in runs and runs[label].result is not None]


def _shown_curves(workbench: Workbench, runs: list[SessionRun]) -> LiveCurves:
    live, fixed = LiveCurves(), colours(workbench)
    for run in runs:
        live.show(run, fixed[run.label])
    return live


def train(
    session: Session,
    methods: list[str],
    red_variant: str = "full",
    red_sites: list[str] | None = None,
    lora_rank: float = 8,
    tare_editors: float = 4,
    tare_top_k: float = 2,
    red_lr: float | None = None,
    lora_lr: float | None = None,
    tare_lr: float | None = None,
    epochs: float = 1.0,
    max_steps: float | None = DEFAULT_MAX_STEPS,
    batch_size: float = DEFAULT_BATCH_SIZE,
    max_length: float = 128,
    seed: float = 0,
    eval_every: float | None = 10,
    other_rates=None,
    shown: list[str] | None = None,
    red_layers: str | None = "",
    progress=None,
):
    """Train each ticked method; yields (status, loss figure, summary table) while it runs.

    A learning rate left empty is the method's registry default; ``other_rates`` is the table (method,
    learning rate) of the methods without settings of their own; ``red_layers`` the layers RED and TARE
    edit ("1-29", "last:8"; empty: all). The plot and the table show the kept runs picked in ``shown`` and
    the new runs, each in its fixed colour.
    """
    layers = chosen_layers(red_layers, session.workbench.model_info().num_layers) if red_layers else None
    specs = build_specs(methods, red_variant, red_sites or ["ffn"], lora_rank, tare_editors, tare_top_k, layers)
    rates = learning_rates(red_lr, lora_lr, tare_lr, other_rates)
    loop = (epochs, max_steps, batch_size, max_length, seed, eval_every)
    jobs = [(spec, train_options(*loop, rates[spec.method])) for spec in specs]
    if session.workbench.data is None:
        raise ValueError("no data loaded yet: upload a file or pick a sample in the Data tab, then train")
    yield from _run_jobs(session, jobs, shown, int(max_length), given_progress(progress))


def _run_jobs(session: Session, jobs: list, shown: list[str] | None, max_length: int, progress):
    """Train (spec, options) after (spec, options), yielding (status, figure, table); Stop ends it between runs."""
    workbench = session.workbench
    workbench.new_job()
    total_parameters, device = workbench.model_info().total_parameters, workbench.key.device
    earlier, runs = _picked(workbench, shown), []
    live = _shown_curves(workbench, earlier)
    warning = length_warning(workbench.data, max_length)
    with session.running("training"):
        first = status_html(_status(jobs[0][0], 0, len(jobs), live, False), 0.0)
        table = summary_table(earlier, total_parameters, device, live.colours)
        yield Notice((first, live.figure(), table), warning) if warning else (first, live.figure(), table)
        for index, (spec, options) in enumerate(jobs):
            table = summary_table(earlier + runs, total_parameters, device, live.colours)
            render = lambda status, table=table: (status, live.figure(), table)  # noqa: E731
            runs.append((yield from _train_one(workbench, spec, options, live, progress, index, len(jobs), render)))
            if workbench.stop_event.is_set():
                break
        done = status_html(_done(runs, workbench.stop_event.is_set()))
        yield done, live.figure(), summary_table(earlier + runs, total_parameters, device, live.colours)


def restore_after_failure(session: Session, shown: list[str] | None = None):
    """After a refused or failed training job: (status with the reason, empty curves, the runs picked in
    ``shown``, or every trained run of this model when no pick is given)."""
    workbench = session.workbench
    runs = [run for run in workbench.runs.values() if run.result is not None]
    if shown is not None:
        runs = _picked(workbench, shown)
    reason = escape(session.last_error or "training did not finish")
    status = f"<div class='red-status'>✕ <b>Training job refused or failed:</b> {reason}</div>"
    total = workbench.model_info().total_parameters if runs else 1
    table = summary_table(runs, total, device=workbench.key.device, colours=colours(workbench))
    return status, empty_figure("No loss curve: the job did not start or did not finish"), table


def shown_choices(session: Session, picked: list[str] | None = None, listed: list[str] | None = None):
    """The "Runs shown" picker: every run of this model, grouped as in the run lists; a run that was not
    ``listed`` before (a new one) joins the ``picked`` ones. The first listing of a page (``listed`` None) picks
    the latest ``LATEST_SHOWN`` runs. Returns (choices, the labels now listed)."""
    runs = run_choices(session.workbench, other_models=False)
    if listed is None:
        picked, listed = [*(picked or []), *latest(session.workbench, LATEST_SHOWN)], runs.choices
    known, picked = set(listed), set(picked or [])
    value = [label for label in runs.choices if label in picked or label not in known]
    return Choices(runs.choices, value, runs.names), list(runs.choices)


def show(session: Session, shown: list[str] | None):
    """Redraw the loss plot and the summary with the picked runs, from what the store kept (no training)."""
    workbench = session.workbench
    runs = _picked(workbench, shown)
    live = _shown_curves(workbench, runs)
    total = workbench.model_info().total_parameters if runs else 1
    return live.figure(NONE_PICKED), summary_table(runs, total, workbench.key.device, live.colours)
