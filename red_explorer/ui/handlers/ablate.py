"""Ablations tab: run chosen rows of the paper's grid (variants × sites, LoRA, TARE) and chart metric vs parameters."""

from __future__ import annotations

import pandas as pd

from ...ablation import parse_row
from ...plots import ablation_figure, empty_figure
from ...workbench import TrainOptions
from ..session import Session
from .common import count, follow, no_progress, optional_int, status_html

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
    progress = progress or no_progress
    names = list(rows or [])
    if not names:
        raise ValueError("tick at least one row of the grid")
    specs = [parse_row(ROWS.get(name, name)) for name in names]
    options = TrainOptions(
        epochs=float(epochs or 1.0),
        max_steps=optional_int(max_steps),
        batch_size=int(batch_size),
        max_length=int(max_length),
        seed=int(seed or 0),
    )
    workbench = session.workbench
    workbench.new_job()
    done: list[dict] = []
    updates: list[tuple] = []

    where = {"fraction": 0.0, "text": f"**Running** {len(specs)} rows…"}

    def on_progress(index: int, total: int, event) -> None:
        step = f", step {event.step}/{event.total_steps}" if event is not None else ""
        where["fraction"] = (index + (event.step / event.total_steps if event else 0)) / total
        where["text"] = f"**Running {specs[index].label}** (row {index + 1}/{total}{step})"
        progress(where["fraction"], desc=f"{specs[index].label}{step}")

    def on_row(row: dict) -> None:
        done.append(row)
        updates.append((results_table(done), ablation_figure(done)))

    latest = (results_table([]), empty_figure("Results appear as rows finish"))
    yield status_html(where["text"], 0.0), *latest
    ticks = follow(workbench, lambda: workbench.ablate(specs, options, on_progress=on_progress, on_row=on_row))
    while True:
        try:
            next(ticks)
        except StopIteration as end:
            rows_out = end.value
            break
        if updates:
            latest = updates[-1]
        yield status_html(where["text"], where["fraction"]), *latest
    stopped = " (stopped)" if workbench.stop_event.is_set() else ""
    yield (
        status_html(f"**Done:** {len(rows_out)}/{len(specs)} rows{stopped}."),
        results_table(rows_out),
        ablation_figure(rows_out),
    )
