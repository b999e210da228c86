"""Data tab: upload a file or pick a sample; see the detected format, a preview, the split and token lengths."""

from __future__ import annotations

import math
import statistics
from html import escape
from pathlib import Path

import pandas as pd

from red_explorer.app.plots import empty_figure, token_length_figure
from red_explorer.app.ui.handlers.common import EXPECTED_ERRORS, ColumnWidths, optional_int, plural
from red_explorer.app.ui.handlers.navigation import UNCHANGED
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import DataState
from red_explorer.data.bundled import SAMPLE_FOLDER

FITTING_SHARE = 0.9  # the suggested max length fits this share of the training examples
MAX_LENGTH_LIMIT = 1024  # the slider's top
NO_DATA = "*No data loaded yet: upload a file or load a sample.*"
NO_DATA_COLUMN = "rows of your data appear here"
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


def suggested_length(lengths: list[int], share: float = FITTING_SHARE) -> int:
    """The shortest slider value (a multiple of 16, at most 1024) that fits ``share`` of the examples."""
    ordered = sorted(lengths)
    needed = ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)] if ordered else 16
    return int(min(MAX_LENGTH_LIMIT, max(16, 16 * math.ceil(needed / 16))))


def length_warning(data: DataState | None, max_length: int) -> str:
    """A warning when most training examples are longer than ``max_length`` (with a length that fits), else ''."""
    lengths = data.lengths()["train"] if data is not None else []
    over = sum(length > max_length for length in lengths)
    if not lengths or over <= len(lengths) / 2:
        return ""
    return (
        f"Most training examples ({over} of {len(lengths)}) are longer than {max_length} tokens and get cut "
        f"(an example whose response is cut away is left out). Try max length {suggested_length(lengths)}: "
        f"it fits {FITTING_SHARE:.0%} of them."
    )


def length_note(session: Session, max_length: float) -> str:
    """One line for the Train and Ablations tabs: the max length (set in the Data tab) and what it cuts."""
    return length_line(session.workbench.data, int(max_length or 128))


def length_line(data: DataState | None, max_length: int) -> str:
    """The max length and how many training examples it cuts (a warning when it cuts most of them)."""
    head = f"Max length **{max_length}** tokens (set in the **Data** tab)"
    if data is None:
        return head + "."
    lengths = data.lengths()["train"]
    over = sum(length > max_length for length in lengths)
    warning = length_warning(data, max_length)
    if warning:
        return f"⚠ {head}. **{warning}**"
    return f"{head}: {over} of {plural(len(lengths), 'training example')} {'is' if over == 1 else 'are'} longer."


def summary_markdown(data: DataState, max_length: int, task: str) -> str:
    detected = data.detected
    lines = [f"### {data.name}", f"**Detected:** {detected.description}.", "", split_table(data, max_length)]
    warning = length_warning(data, max_length)
    if warning:
        lines.append(f"\n> ⚠ **{warning}**")
    expected = SAMPLES.get(data.name, (None, None))[1]
    if data.path.parent == SAMPLE_FOLDER and expected and expected != task:
        lines.append(f"\n> **Note:** This sample is meant for **{expected}**; choose that task in the Model tab.")
    return "\n".join(lines)


def preview_table(data: DataState | None) -> pd.DataFrame:
    """The first training rows, every column (an empty table with a header that says what will be there)."""
    return pd.DataFrame(data.preview()) if data is not None else pd.DataFrame(columns=[NO_DATA_COLUMN])


def preview_widths(session: Session) -> ColumnWidths:
    """An equal share of the width for each preview column, so that the response is as visible as the prompt."""
    data = session.workbench.data
    columns = len(data.probe.raw["train"].column_names) if data is not None else 1
    return ColumnWidths([f"{100 / columns:.0f}%"] * columns)


def show_data(session: Session, max_length: float = 128):
    """The session's data as the tab shows it: (summary, preview, token-length histogram)."""
    workbench, max_length = session.workbench, int(max_length or 128)
    data = workbench.data
    if data is None:
        return NO_DATA, preview_table(None), empty_figure("Token lengths appear when data is loaded")
    figure = token_length_figure(data.lengths(), max_length)
    return summary_markdown(data, max_length, workbench.key.task), preview_table(data), figure


def loaded_sample(session: Session):
    """The sample list's choice: the bundled sample that is loaded now (a demo or a reload loaded it), else as is."""
    data = session.workbench.data
    if data is not None and data.name in SAMPLES and Path(data.path).resolve() == (SAMPLE_FOLDER / data.name).resolve():
        return data.name
    return UNCHANGED


def load_data(
    session: Session,
    upload: str | None,
    sample: str | None,
    validation_fraction: float = 0.1,
    max_rows: float | None = None,
    max_length: float = 128,
):
    """Read the file (an upload wins over a sample): (summary, preview table, token-length histogram).

    A file that cannot be read leaves the session's data as it was; the error says what is still loaded.
    """
    path, name = _source(upload, sample)
    workbench = session.workbench
    try:
        workbench.load_data(path, float(validation_fraction), optional_int(max_rows), name=name)
    except EXPECTED_ERRORS as error:
        raise ValueError(f"{name} was not loaded: {error}. {still_loaded(session)}") from error
    return length_set(session, max_length)


def length_set(session: Session, max_length: float = 128):
    """The max length was set (or data loaded with it): kept with the last choice, then ``show_data``."""
    session.workbench.remember_max_length(int(max_length or 128))
    return show_data(session, max_length)


def restored_length(session: Session) -> int:
    """Page load, after the last model and data are restored: the max length the owner last set."""
    return session.workbench.max_length


def still_loaded(session: Session) -> str:
    data = session.workbench.data
    if data is None:
        return "No data is loaded."
    detected = data.detected
    return f"Still loaded: {data.name} ({detected.num_train} train, {detected.num_validation} validation rows)."


def restore_after_failure(session: Session, max_length: float = 128):
    """After a refused file: the data still loaded, the reason on top, and the upload box cleared.

    Returns (summary, preview, histogram, upload).
    """
    summary, preview, figure = show_data(session, max_length)
    reason = session.last_error or "The file was not loaded."
    return f"> ✕ **{escape(reason)}**\n\n{summary}", preview, figure, None
