"""Train tab: train RED, LoRA and/or TARE one after another, with live loss curves, progress and a Stop."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from red_explorer.app.plots import empty_figure, loss_figure
from red_explorer.app.ui.handlers.common import (
    count,
    follow,
    megabytes,
    no_progress,
    status_html,
    stream,
    train_options,
)
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import SessionRun, Workbench
from red_explorer.core.registry import MethodSpec
from red_explorer.engine.training import EvalEvent, StepEvent

METHOD_CHOICES = ("RED", "LoRA", "TARE")
SUMMARY_COLUMNS = ["method", "trainable params", "% of model", "time (s)", "peak memory", "val loss before"]
SUMMARY_COLUMNS += ["val loss after", "stopped"]


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
class LiveCurves:
    """Loss curves that the training thread appends to and the UI thread draws."""

    curves: dict[str, tuple[list[float], list[dict]]] = field(default_factory=dict)
    last: StepEvent | None = None

    def recorder(self, label: str):
        train_loss, eval_history = self.curves.setdefault(label, ([], []))

        def record(event) -> None:
            if isinstance(event, StepEvent):
                train_loss.append(event.loss)
                self.last = event
            elif isinstance(event, EvalEvent):
                eval_history.append({"step": event.step} | event.metrics)

        return record

    def add_endpoints(self, run: SessionRun) -> None:
        """Put the validation loss before (step 0) and after training (last step) on the run's curve."""
        train_loss, history = self.curves.setdefault(run.label, ([], []))
        last = len(train_loss)
        between = [record for record in history if 0 < record["step"] < last]
        before = {"step": 0} | run.result.metrics_before
        history[:] = [before, *between, {"step": last} | run.result.metrics_after]

    def figure(self):
        if not any(train for train, _ in self.curves.values()):
            return empty_figure("The loss curves appear after the first step")
        return loss_figure(self.curves, "Training and validation loss")


def summary_table(runs: list[SessionRun], total_parameters: int) -> pd.DataFrame:
    """One row per finished run: cost and the validation metric before and after."""
    rows = []
    for run in runs:
        result = run.result
        row = {
            "method": run.label,
            "trainable params": count(result.trainable_parameters),
            "% of model": f"{100 * result.trainable_parameters / total_parameters:.3g}%",
            "time (s)": round(result.train_seconds, 1),
            "peak memory": megabytes(result.peak_memory_bytes),
            "val loss before": round(result.metrics_before["loss"], 4),
            "val loss after": round(result.metrics_after["loss"], 4),
        }
        if "accuracy" in result.metrics_after:
            row["accuracy before"] = round(result.metrics_before["accuracy"], 4)
            row["accuracy after"] = round(result.metrics_after["accuracy"], 4)
        row["stopped"] = result.stopped_reason
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else SUMMARY_COLUMNS)


def _status(spec: MethodSpec, index: int, total: int, live: LiveCurves, started: float) -> str:
    event = live.last
    if event is None:
        return f"**Training {spec.label}** ({index + 1}/{total}): preparing (copying the base model, first evaluation)…"
    per_step = (time.perf_counter() - started) / max(event.step, 1)
    return (
        f"**Training {spec.label}** ({index + 1}/{total}): step {event.step}/{event.total_steps} · "
        f"loss {event.loss:.4f} · {per_step:.1f} s/step"
    )


def _done(runs: list[SessionRun], stopped: bool) -> str:
    parts = []
    for run in runs:
        before, after = run.result.metrics_before["loss"], run.result.metrics_after["loss"]
        parts.append(f"**{run.label}**: val loss {before:.4f} → {after:.4f} in {run.result.train_seconds:.1f} s")
    head = "**Stopped.**" if stopped else "**Done.**"
    return head + " " + "; ".join(parts) + ". See **Inspect** for what RED learned."


def _train_one(workbench: Workbench, spec, options, live: LiveCurves, progress, index: int, total: int, render):
    """Train one spec in a worker thread, yielding ``render(status)`` until it ends; returns the run."""
    live.last, started = None, time.perf_counter()

    def tick():
        event = live.last
        fraction = (index + (event.step / event.total_steps if event else 0.0)) / total
        progress(fraction, desc=f"{spec.label}: step {event.step if event else 0}/{options.max_steps or '…'}")
        return render(status_html(_status(spec, index, total, live, started), fraction))

    ticks = follow(workbench, lambda: workbench.train(spec, options, live.recorder(spec.label)))
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
    workbench.new_job()
    total_parameters = workbench.model_info().total_parameters
    live, runs = LiveCurves(), []
    for index, spec in enumerate(specs):
        options = train_options(epochs, max_steps, batch_size, max_length, seed, eval_every, rates[spec.method])
        table = summary_table(runs, total_parameters)
        render = lambda status, table=table: (status, live.figure(), table)  # noqa: E731
        runs.append((yield from _train_one(workbench, spec, options, live, progress, index, len(specs), render)))
        live.add_endpoints(runs[-1])
        if workbench.stop_event.is_set():
            break
    done = status_html(_done(runs, workbench.stop_event.is_set()))
    yield done, live.figure(), summary_table(runs, total_parameters)


def stop(session: Session) -> str:
    """Ask this session's running job to stop after the current step."""
    session.workbench.stop()
    return status_html("**Stopping** after the current step…")
