"""Ablations tab: run chosen rows of the paper's grid (variants × sites, LoRA, TARE) and chart metric vs parameters."""

from __future__ import annotations

import pandas as pd

from red_explorer.app.plots import ablation_figure, empty_figure
from red_explorer.app.ui.handlers.common import count, follow, no_progress, status_html, stream, train_options
from red_explorer.app.ui.session import Session
from red_explorer.engine.ablation import parse_row

ROWS = {
    "RED full · FFN": "red:full:ffn",
    "RED scale only · FFN": "red:scale:ffn",
    "RED bias only · FFN": "red:bias:ffn",
    "RED full · attention": "red:full:attn",
    "RED scale only · attention": "red:scale:attn",
    "RED bias only · attention": "red:bias:attn",
    "RED full · FFN + attention": "red:full:ffn+attn",
    "RED scale only · FFN + attention": "red:scale:ffn+attn",
    "RED bias only · FFN + attention": "red:bias:ffn+attn",
    "LoRA r=8": "lora",
    "TARE · FFN": "tare:ffn",
}
DEFAULT_ROWS = ["RED full · FFN", "RED bias only · FFN"]


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


class _Tracker:
    """What the ablation thread reports (progress, finished rows) and the UI thread shows."""

    def __init__(self, specs, progress):
        self.specs, self.progress = specs, progress
        self.fraction, self.text, self.rows = 0.0, f"**Running** {len(specs)} rows…", []

    def on_progress(self, index: int, total: int, event) -> None:
        step = f", step {event.step}/{event.total_steps}" if event is not None else ""
        self.fraction = (index + (event.step / event.total_steps if event else 0)) / total
        self.text = f"**Running {self.specs[index].label}** (row {index + 1}/{total}{step})"
        self.progress(self.fraction, desc=f"{self.specs[index].label}{step}")

    def outputs(self, done: bool = False) -> tuple:
        rows = list(self.rows)
        chart = ablation_figure(rows) if rows else empty_figure("Results appear as rows finish")
        if done:
            stopped = " (stopped)" if len(rows) < len(self.specs) else ""
            return status_html(f"**Done:** {len(rows)}/{len(self.specs)} rows{stopped}."), results_table(rows), chart
        return status_html(self.text, self.fraction), results_table(rows), chart


def ablate(
    session: Session,
    rows: list[str],
    max_steps: float | None = 30,
    batch_size: float = 8,
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
    workbench.new_job()
    tracker = _Tracker(specs, progress or no_progress)
    yield tracker.outputs()
    ticks = follow(workbench, lambda: workbench.ablate(specs, options, tracker.on_progress, tracker.rows.append))
    yield from stream(ticks, tracker.outputs)
    yield tracker.outputs(done=True)
