"""Data tab: upload a file or pick a sample; see the detected format, a preview, the split and token lengths."""

from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd

from red_explorer.app.plots import token_length_figure
from red_explorer.app.ui.handlers.common import optional_int
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import DataState
from red_explorer.data.bundled import SAMPLE_FOLDER

SAMPLES = {
    "restaurants_e2e.csv": ("Restaurants: data → sentence (E2E style)", "causal-lm"),
    "pirate_style.jsonl": ("Pirate speak: a new answer style", "causal-lm"),
    "sentiment.csv": ("Sentiment of reviews", "classification"),
}


def sample_choices() -> list[tuple[str, str]]:
    """(label, file name) pairs for the sample dropdown."""
    return [(f"{label} · {name} ({task})", name) for name, (label, task) in SAMPLES.items()]


def _source(upload: str | None, sample: str | None) -> tuple[Path, str]:
    if upload:
        return Path(upload), Path(upload).name
    if sample:
        name = Path(sample).name
        if name not in SAMPLES:
            raise ValueError(f"unknown sample {sample!r}; pick one of {', '.join(SAMPLES)}")
        return SAMPLE_FOLDER / name, name
    raise ValueError("upload a data file (CSV, TSV, JSON, JSONL, Parquet or TXT) or pick a sample")


def split_table(data: DataState, max_length: int) -> str:
    """A markdown table: examples, median and longest token length, how many exceed max length, per split."""
    rows = ["| split | examples | median tokens | longest | longer than max length |", "|---|---|---|---|---|"]
    for split, lengths in data.lengths().items():
        if not lengths:
            continue
        over = sum(length > max_length for length in lengths)
        rows.append(
            f"| {split} | {len(lengths)} | {statistics.median(lengths):.0f} | {max(lengths)} | "
            f"{over} (> {max_length}) |"
        )
    return "\n".join(rows)


def summary_markdown(data: DataState, max_length: int, task: str) -> str:
    detected = data.detected
    lines = [f"### {data.name}", f"**Detected:** {detected.description}.", "", split_table(data, max_length)]
    expected = SAMPLES.get(data.name, (None, None))[1]
    if data.path.parent == SAMPLE_FOLDER and expected and expected != task:
        lines.append(f"\n> **Note:** This sample is meant for **{expected}**; choose that task in the Model tab.")
    return "\n".join(lines)


def load_data(
    session: Session,
    upload: str | None,
    sample: str | None,
    validation_fraction: float = 0.1,
    max_rows: float | None = None,
    max_length: float = 128,
):
    """Read the file (an upload wins over a sample): (summary, preview table, token-length histogram)."""
    path, name = _source(upload, sample)
    workbench = session.workbench
    data = workbench.load_data(path, float(validation_fraction), optional_int(max_rows), name=name)
    max_length = int(max_length or 128)
    preview = pd.DataFrame(data.preview())
    figure = token_length_figure(data.lengths(), max_length)
    return summary_markdown(data, max_length, workbench.key.task), preview, figure
