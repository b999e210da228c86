"""A user's data file in the app: read once for the current tokenizer, previewed, tokenised per max length."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from red_explorer.data.bundled import SAMPLE_FOLDER
from red_explorer.data.prepared import PreparedData

LENGTH_PROBE = 2048  # tokens: long enough to see how much a max length would cut
PREVIEW_ROWS = 8


@dataclass
class DataState:
    """The user's data file as read for the current tokenizer."""

    path: Path
    name: str
    validation_fraction: float
    max_rows: int | None
    probe: PreparedData | None  # tokenised with LENGTH_PROBE, for the preview and the length histogram
    prepared: dict[int, PreparedData] = field(default_factory=dict)  # by max_length

    @property
    def detected(self):
        return self.probe.detected

    def lengths(self) -> dict[str, list[int]]:
        tokenized = self.probe.tokenized
        return {split: [len(ids) for ids in tokenized[split]["input_ids"]] for split in ("train", "validation")}

    def release(self) -> None:
        """Drop the tables this state holds (its session closed), even while something still refers to the state."""
        self.prepared.clear()
        self.probe = None

    def preview(self, rows: int = PREVIEW_ROWS) -> list[dict[str, str]]:
        split = self.probe.raw["train"]
        return [{name: _cell(split[i][name]) for name in split.column_names} for i in range(min(rows, split.num_rows))]


def _cell(value, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def kept_copy(path: Path, folder: Path) -> Path:
    """``path`` copied into ``folder``, which keeps this one file: the app deletes an upload from its cache after an
    hour, and a session reads its data again (a new max length or model). A bundled sample, or the copy itself,
    stays where it is."""
    if path.parent.resolve() in (folder.resolve(), SAMPLE_FOLDER.resolve()):
        return path
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Path(shutil.copy2(path, folder / path.name))
