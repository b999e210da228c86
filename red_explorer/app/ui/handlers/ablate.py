"""Ablations tab: run chosen rows of the paper's grid (variants × sites, LoRA, TARE) and chart metric vs parameters."""

from __future__ import annotations

from html import escape

import pandas as pd

from red_explorer.app.plots import ablation_figure, empty_figure
from red_explorer.app.ui.handlers.common import (
    Notice,
    Visible,
    count,
    follow,
    given_progress,
    plural,
    status_html,
    stream,
    train_options,
)
from red_explorer.app.ui.handlers.data import length_warning
from red_explorer.app.ui.session import Session
from red_explorer.choice.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_STEPS
from red_explorer.engine.ablation import parse_row

GRID = [  # the paper's grid: RED variants × sites, then LoRA and TARE
    *(f"red:{variant}:{sites}" for sites in ("ffn", "attn", "ffn+attn") for variant in ("full", "scale", "bias")),
    "lora",
    "tare:ffn",
]
ROWS = {parse_row(row).label: row for row in GRID}  # named as the table, the chart and the kept runs name them
DEFAULT_ROWS = ["RED full (ffn)", "RED bias (ffn)"]
MODES = ("paper ablation", "learning-rate sweep")


COLUMNS = ["row", "trainable params", "metric", "before", "after", "change", "time (s)", "stopped"]


def results_table(rows: list[dict]) -> pd.DataFrame:
    """The paper's Tables 6-7 layout: row, parameters, metric before and after, time."""
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    return pd.DataFrame(
        [
            {
                "row": row["label"],
                "trainable params": count(row["trainable_parameters"]),
                "metric": row["metric"],
                "before": round(row["before"], 4),
                "after": round(row["after"], 4),
                "change": round(row["after"] - row["before"], 4),
                "time (s)": round(row["train_seconds"], 1),
                "stopped": row["stopped_reason"],
            }
            for row in rows
        ]
    )


def show_mode(mode: str) -> tuple[Visible, ...]:
    """The paper ablation's (settings, buttons, results), then the sweep's: only the chosen mode's are shown."""
    paper = mode != MODES[1]
    return (Visible(paper),) * 3 + (Visible(not paper),) * 3


class _Tracker:
    """What the ablation thread reports (progress, finished rows) and the UI thread shows."""

    def __init__(self, specs, progress, data_name: str = ""):
        self.specs, self.progress = specs, progress
        self.title = f"Metric against trainable parameters on {data_name}"
        self.fraction, self.text, self.rows = 0.0, f"**Running** {plural(len(specs), 'row')}…", []

    def on_progress(self, index: int, total: int, event) -> None:
        step = f", step {event.step}/{event.total_steps}" if event is not None else ""
        self.fraction = (index + (event.step / event.total_steps if event else 0)) / total
        self.text = f"**Running {self.specs[index].label}** (row {index + 1}/{total}{step})"
        self.progress(self.fraction, desc=f"{self.specs[index].label}{step}")

    def outputs(self, done: bool = False, stopping: bool = False) -> tuple:
        rows = list(self.rows)
        chart = ablation_figure(rows, self.title) if rows else empty_figure("Results appear as rows finish")
        if done:
            stopped = " (stopped)" if len(rows) < len(self.specs) else ""
            return status_html(f"**Done:** {len(rows)}/{len(self.specs)} rows{stopped}."), results_table(rows), chart
        if stopping:
            return status_html("**Stopping** the ablation after this step…", self.fraction), results_table(rows), chart
        return status_html(self.text, self.fraction), results_table(rows), chart


def ablate(
    session: Session,
    rows: list[str],
    max_steps: float | None = DEFAULT_MAX_STEPS,
    batch_size: float = DEFAULT_BATCH_SIZE,
    max_length: float = 128,
    epochs: float = 1.0,
    seed: float = 0,
    progress=None,
):
    """Train each chosen row (each with its method's usual learning rate); yields (status, table, chart)."""
    if not rows:
        raise ValueError("tick at least one row of the grid")
    specs = [parse_row(ROWS.get(name, name)) for name in rows]
    options = train_options(epochs, max_steps, batch_size, max_length, seed)
    workbench = session.workbench
    if workbench.data is None:
        raise ValueError("no data loaded yet: upload a file or pick a sample in the Data tab, then run the ablation")
    workbench.new_job()
    tracker = _Tracker(specs, given_progress(progress), workbench.data.name)
    warning = length_warning(workbench.data, options.max_length)
    with session.running("ablation"):
        yield Notice(tracker.outputs(), warning) if warning else tracker.outputs()
        call = lambda: workbench.ablate(specs, options, tracker.on_progress, tracker.rows.append)  # noqa: E731
        yield from stream(follow(workbench, call), lambda: tracker.outputs(stopping=workbench.stop_event.is_set()))
        yield tracker.outputs(done=True)


def restore_after_failure(session: Session):
    """After a refused or failed ablation: (status with the reason, the rows that finished, their chart)."""
    rows = session.workbench.ablation_rows
    reason = escape(session.last_error or "the ablation did not finish")
    status = f"<div class='red-status'>✕ <b>Ablation not run to the end:</b> {reason}</div>"
    chart = ablation_figure(rows) if rows else empty_figure("No results: the ablation did not run")
    return status, results_table(rows), chart
