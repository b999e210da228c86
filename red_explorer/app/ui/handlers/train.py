"""Train tab: train RED, LoRA and/or TARE one after another, with live loss curves, progress and a Stop."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from html import escape

import pandas as pd

from red_explorer.app.plots import empty_figure, loss_figure, run_colour
from red_explorer.app.ui.handlers.common import (
    Notice,
    count,
    follow,
    megabytes,
    no_progress,
    status_html,
    stream,
    train_options,
)
from red_explorer.app.ui.handlers.data import length_warning
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import SessionRun, Workbench
from red_explorer.core.registry import MethodSpec
from red_explorer.engine.training import EvalEvent, StepEvent

METHOD_CHOICES = ("RED", "LoRA", "TARE")
SUMMARY_COLUMNS = ["method", "trainable params", "% of model", "set-up (s)", "s/step", "train time (s)"]
SUMMARY_COLUMNS += ["val loss before", "val loss after", "stopped"]
NEXT_STEP = {  # where to look next after training a method
    "red": "See **Inspect** for what RED learned",
    "tare": "See **Inspect** (TARE section) for which editor each token uses",
}
IDLE = "<div class='red-status'><i>Pick methods and press Train. On a CPU a step takes a few seconds.</i></div>"


def build_specs(methods, red_variant, red_sites, lora_rank, tare_editors, tare_top_k) -> list[MethodSpec]:
    """The MethodSpecs of the ticked methods, in the order RED, LoRA, TARE."""
    chosen = {method.lower() for method in methods or []}
    unknown = chosen - {"red", "lora", "tare"}
    if unknown or not chosen:
        raise ValueError("tick at least one method to train: RED, LoRA or TARE")
    sites = list(red_sites or [])
    if ("red" in chosen or "tare" in chosen) and not sites:
        raise ValueError("tick at least one site for RED/TARE: FFN and/or attention")
    specs = []
    if "red" in chosen:
        specs.append(MethodSpec("red", variant=red_variant or "full", sites=sites))
    if "lora" in chosen:
        specs.append(MethodSpec("lora", rank=int(lora_rank or 8), alpha=2 * int(lora_rank or 8)))
    if "tare" in chosen:
        specs.append(MethodSpec("tare", sites=sites, num_editors=int(tare_editors), top_k=int(tare_top_k)))
    return specs


@dataclass
class Timing:
    """When one run started and how long each optimizer step took.

    set-up = (first step reported) − (start) − (first step's own time): copying the base model, attaching the
    method, tokenising, the first validation. per step = median step time after the first (the steady state).
    """

    started: float
    first_reported: float | None = None
    step_seconds: list[float] = field(default_factory=list)

    def record(self, seconds: float, now: float) -> None:
        if self.first_reported is None:
            self.first_reported = now
        self.step_seconds.append(seconds)

    @property
    def setup(self) -> float | None:
        if self.first_reported is None:
            return None
        return max(0.0, self.first_reported - self.started - self.step_seconds[0])

    @property
    def per_step(self) -> float | None:
        steady = self.step_seconds[1:] or self.step_seconds
        return statistics.median(steady) if steady else None


@dataclass
class LiveCurves:
    """Loss curves and step timings that the training thread appends to and the UI thread draws."""

    curves: dict[str, tuple[list[float], list[dict]]] = field(default_factory=dict)
    timings: dict[str, Timing] = field(default_factory=dict)
    last: StepEvent | None = None
    colours: dict[str, str] = field(default_factory=dict)  # label -> run_colour(run id), once the run is kept

    def recorder(self, label: str, clock=time.perf_counter):
        train_loss, eval_history = self.curves.setdefault(label, ([], []))
        timing = self.timings[label] = Timing(clock())

        def record(event) -> None:
            if isinstance(event, StepEvent):
                train_loss.append(event.loss)
                timing.record(getattr(event, "seconds", 0.0), clock())
                self.last = event
            elif isinstance(event, EvalEvent):
                eval_history.append({"step": event.step} | event.metrics)

        return record

    def add_endpoints(self, run: SessionRun, trained_as: str | None = None) -> None:
        """Put the validation loss before (step 0) and after training (last step) on the run's curve.

        ``trained_as`` is the label the curve was drawn under while training; it takes the kept run's label.
        """
        if trained_as and trained_as != run.label and trained_as in self.curves:
            self.curves[run.label] = self.curves.pop(trained_as)
            self.timings[run.label] = self.timings.pop(trained_as)
        self.colours[run.label] = run_colour(run.id)
        train_loss, history = self.curves.setdefault(run.label, ([], []))
        last = len(train_loss)
        between = [record for record in history if 0 < record["step"] < last]
        before = {"step": 0} | run.result.metrics_before
        history[:] = [before, *between, {"step": last} | run.result.metrics_after]

    def figure(self):
        if not any(train for train, _ in self.curves.values()):
            return empty_figure("The loss curves appear after the first step")
        return loss_figure(self.curves, "Training and validation loss", self.colours)


def _seconds(value: float | None, digits: int = 1):
    return None if value is None else round(value, digits)


def summary_table(runs: list[SessionRun], total_parameters: int, timings=None, device: str = "cpu") -> pd.DataFrame:
    """One row per finished run: cost (set-up, steady s/step, time) and the validation metric before and after.

    Peak memory is shown on a GPU only: on a CPU the process's resident memory is shared by everything in it,
    so its growth during one run is no per-run figure.
    """
    timings = timings or {}
    on_gpu = device.startswith("cuda")
    rows = []
    for run in runs:
        result, timing = run.result, timings.get(run.label)
        row = {
            "method": run.label,
            "trainable params": count(result.trainable_parameters),
            "% of model": f"{100 * result.trainable_parameters / total_parameters:.3g}%",
            "set-up (s)": _seconds(timing.setup) if timing else None,
            "s/step": _seconds(timing.per_step, 2) if timing else None,
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
    return pd.DataFrame(rows, columns=None if rows else SUMMARY_COLUMNS)


def _status(spec: MethodSpec, index: int, total: int, live: LiveCurves, stopping: bool) -> str:
    event, timing = live.last, live.timings.get(spec.label)
    head = f"**Training {spec.label}** ({index + 1}/{total})"
    if stopping:
        where = f" (step {event.step}/{event.total_steps})" if event else ""
        return f"**Stopping** {spec.label} after this step…{where}"
    if event is None or timing is None:
        return f"{head}: setting up (copying the base model, first validation)…"
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
    """Train one spec in a worker thread, yielding ``render(status)`` until it ends; returns the run."""
    live.last = None
    record = live.recorder(spec.label)

    def tick():
        event = live.last
        fraction = (index + (event.step / event.total_steps if event else 0.0)) / total
        steps = f"{event.step}/{event.total_steps}" if event else "set-up"
        progress(fraction, desc=f"{spec.label}: step {steps}")
        stopping = workbench.stop_event.is_set()
        return render(status_html(_status(spec, index, total, live, stopping), fraction))

    ticks = follow(workbench, lambda: workbench.train(spec, options, record))
    return (yield from stream(ticks, tick))


def train(
    session: Session,
    methods: list[str],
    red_variant: str = "full",
    red_sites: list[str] | None = None,
    lora_rank: float = 8,
    tare_editors: float = 4,
    tare_top_k: float = 2,
    red_lr: float = 1e-2,
    lora_lr: float = 3e-4,
    tare_lr: float = 1e-2,
    epochs: float = 1.0,
    max_steps: float | None = 30,
    batch_size: float = 8,
    max_length: float = 128,
    seed: float = 0,
    eval_every: float | None = 10,
    progress=None,
):
    """Train each ticked method; yields (status, loss figure, summary table) while it runs."""
    progress = progress or no_progress
    workbench = session.workbench
    specs = build_specs(methods, red_variant, red_sites or ["ffn"], lora_rank, tare_editors, tare_top_k)
    rates = {"red": red_lr, "lora": lora_lr, "tare": tare_lr}
    options = [
        train_options(epochs, max_steps, batch_size, max_length, seed, eval_every, rates[spec.method]) for spec in specs
    ]
    if workbench.data is None:
        raise ValueError("no data loaded yet: upload a file or pick a sample in the Data tab, then train")
    workbench.new_job()
    total_parameters, device = workbench.model_info().total_parameters, workbench.key.device
    live, runs = LiveCurves(), []
    warning = length_warning(workbench.data, int(max_length))
    with session.running("training"):
        first = status_html(_status(specs[0], 0, len(specs), live, False), 0.0)
        table = summary_table(runs, total_parameters)
        yield Notice((first, live.figure(), table), warning) if warning else (first, live.figure(), table)
        for index, spec in enumerate(specs):
            table = summary_table(runs, total_parameters, live.timings, device)
            render = lambda status, table=table: (status, live.figure(), table)  # noqa: E731
            trainer = _train_one(workbench, spec, options[index], live, progress, index, len(specs), render)
            runs.append((yield from trainer))
            live.add_endpoints(runs[-1], spec.label)
            if workbench.stop_event.is_set():
                break
        done = status_html(_done(runs, workbench.stop_event.is_set()))
        yield done, live.figure(), summary_table(runs, total_parameters, live.timings, device)


def restore_after_failure(session: Session):
    """After a refused or failed training job: (status with the reason, empty curves, this session's runs)."""
    workbench = session.workbench
    runs = [run for run in workbench.runs.values() if run.result is not None]
    reason = escape(session.last_error or "training did not finish")
    status = f"<div class='red-status'>✕ <b>Training did not run to the end:</b> {reason}</div>"
    total = workbench.model_info().total_parameters if runs else 1
    table = summary_table(runs, total, device=workbench.key.device)
    return status, empty_figure("No loss curve: the job did not start or did not finish"), table


def stop(session: Session) -> str:
    """Ask this session's running job to stop after the current step (or say that nothing is running)."""
    if session.job is None:
        return status_html("Nothing is running: **Stop** ends a training or ablation job after its current step.")
    session.workbench.stop()
    return status_html(f"**Stopping** the {session.job} after this step…")
