"""A user's table: read it, detect its format, clean it, split it into train and validation, list its labels."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict

from red_explorer.data.formats import (
    TASKS,
    ColumnFormat,
    Columns,
    DataError,
    DetectedFormat,
    clean_columns,
    detect_columns,
    find_column,
    read_columns,
)

MIN_ROWS_TO_SPLIT = 4
ROW_LIMIT = 20_000  # rows used from a file unless max_rows asks for more: more than a run here trains on
CHARS_PER_TOKEN = 32  # a field is cut to max_length × this many characters before tokenising (text averages 3-5)
TRAIN_SPLIT_VALUES = ("train", "training")
VALIDATION_SPLIT_VALUES = ("validation", "valid", "val", "dev", "eval", "test")


@dataclass
class DataConfig:
    """How to read, split and tokenise a user's data file."""

    task: str = field(default="causal-lm", metadata={"help": "'causal-lm' or 'classification'"})
    max_length: int = field(default=256, metadata={"help": "tokens kept per example (longer ones are truncated)"})
    validation_fraction: float = field(default=0.1, metadata={"help": "share of rows held out, in (0, 0.5]"})
    seed: int = field(default=0, metadata={"help": "seed of the train/validation split"})
    max_rows: int | None = field(
        default=None, metadata={"help": f"use at most this many rows; None = the first {ROW_LIMIT:,}"}
    )
    max_file_bytes: int = field(default=50_000_000, metadata={"help": "refuse larger files"})
    split_column: str | None = field(
        default=None, metadata={"help": "a column whose values (train / validation) choose each row's split"}
    )

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"task must be one of {TASKS}, got {self.task!r}")
        if not isinstance(self.max_length, int) or self.max_length < 8:
            raise DataError(f"max_length must be an integer >= 8, got {self.max_length!r}")
        if not 0.0 < self.validation_fraction <= 0.5:
            raise DataError(f"validation_fraction must be in (0, 0.5], got {self.validation_fraction!r}")
        if self.max_rows is not None and (not isinstance(self.max_rows, int) or self.max_rows < MIN_ROWS_TO_SPLIT):
            raise DataError(f"max_rows must be None or an integer >= {MIN_ROWS_TO_SPLIT}, got {self.max_rows!r}")
        if not isinstance(self.max_file_bytes, int) or self.max_file_bytes <= 0:
            raise DataError(f"max_file_bytes must be a positive integer, got {self.max_file_bytes!r}")
        if self.split_column is not None and not str(self.split_column).strip():
            raise DataError("split_column must be None or a column name, got an empty string")

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- loading and splitting


@dataclass
class _Table:
    """A cleaned file: canonical columns plus what was found on the way."""

    fmt: ColumnFormat
    columns: Columns
    file_format: str
    source_columns: dict[str, str]
    ignored: tuple[str, ...]
    dropped: dict[str, int]
    splits: list[str] | None
    notes: tuple[str, ...] = ()

    @property
    def num_rows(self) -> int:
        return len(next(iter(self.columns.values())))

    def select(self, rows: Iterable[int]) -> Dataset:
        return Dataset.from_dict({name: [values[row] for row in rows] for name, values in self.columns.items()})


def _read_table(path: Path, config: DataConfig, split_column: str | None) -> _Table:
    columns, file_format = read_columns(path, config.max_file_bytes)
    split_name = find_column(columns, split_column, path.name) if split_column else None
    data_columns = {name: values for name, values in columns.items() if name != split_name}
    fmt, mapping = detect_columns(data_columns, config.task, path.name)
    splits = _split_values(columns[split_name], split_name, path.name) if split_name else None
    cleaned, dropped, kept = clean_columns(data_columns, fmt, mapping, path.name)
    notes = []
    limit = config.max_rows or ROW_LIMIT
    if len(kept) > limit:
        if config.max_rows is None:
            notes.append(f"used the first {ROW_LIMIT:,} of its {len(kept):,} rows (set max_rows to use more)")
        kept = kept[:limit]
        cleaned = {name: values[:limit] for name, values in cleaned.items()}
    max_chars = config.max_length * CHARS_PER_TOKEN
    cut = cap_text(cleaned, max_chars)
    if cut:
        rows = f"{cut} row{'s' if cut != 1 else ''}"
        notes.append(f"cut the long fields of {rows} to {max_chars:,} characters before tokenising")
    ignored = tuple(name for name in data_columns if name not in mapping.values())
    splits = [splits[row] for row in kept] if splits else None
    return _Table(fmt, cleaned, file_format, mapping, ignored, dropped, splits, tuple(notes))


def cap_text(columns: Columns, max_chars: int) -> int:
    """Cut every text (and message content) longer than ``max_chars``, in place; return how many rows were cut.

    Tokenising a whole 50 MB line to keep its first max_length tokens costs minutes and gigabytes;
    max_length × CHARS_PER_TOKEN characters hold more tokens than max_length keeps.
    """
    cut = set()
    for name, values in columns.items():
        for row, value in enumerate(values):
            if isinstance(value, str) and len(value) > max_chars and name != "label":
                values[row] = value[:max_chars]
                cut.add(row)
            elif name == "messages" and value:
                for message in value:
                    if len(message["content"]) > max_chars:
                        message["content"] = message["content"][:max_chars]
                        cut.add(row)
    return len(cut)


def _split_values(values: list[Any], column: str, source: str) -> list[str]:
    splits = []
    for row, value in enumerate(values, start=1):
        word = str(value).strip().lower() if value is not None else ""
        if word in TRAIN_SPLIT_VALUES or word in VALIDATION_SPLIT_VALUES:
            splits.append("train" if word in TRAIN_SPLIT_VALUES else "validation")
            continue
        accepted = ", ".join(TRAIN_SPLIT_VALUES + VALIDATION_SPLIT_VALUES)
        raise DataError(f"row {row} of split column {column!r} in {source} is {value!r}; use one of {accepted}")
    return splits


def _random_split(num_rows: int, fraction: float, seed: int, source: str) -> tuple[list[int], list[int]]:
    if num_rows < MIN_ROWS_TO_SPLIT:
        raise DataError(
            f"{source} has only {num_rows} usable row{'s' if num_rows != 1 else ''}, "
            "too few to split off a validation set; "
            f"add rows (at least {MIN_ROWS_TO_SPLIT}) or pass a validation file"
        )
    order = list(range(num_rows))
    random.Random(seed).shuffle(order)
    num_validation = min(num_rows - 1, max(1, round(num_rows * fraction)))
    return sorted(order[num_validation:]), sorted(order[:num_validation])


def _split_rows(table: _Table, config: DataConfig, source: str) -> tuple[list[int], list[int]]:
    if table.splits is None:
        return _random_split(table.num_rows, config.validation_fraction, config.seed, source)
    train = [row for row, split in enumerate(table.splits) if split == "train"]
    validation = [row for row, split in enumerate(table.splits) if split == "validation"]
    for name, rows in (("train", train), ("validation", validation)):
        if not rows:
            raise DataError(f"split column {config.split_column!r} in {source} marks no {name} rows; mark some")
    return train, validation


def load_table(
    path: str | Path, config: DataConfig, validation_path: str | Path | None = None
) -> tuple[DatasetDict, DetectedFormat]:
    """Read a data file, detect its format and return ("train", "validation") datasets with what was detected.

    The datasets hold canonical column names (prompt/response, instruction/input/output, question/answer,
    messages, text, or text | sentence1 + sentence2 with a string label). With `validation_path` the validation
    split is that file; otherwise `config.split_column` or a seeded random split of `config.validation_fraction`.
    """
    path = Path(path)
    table = _read_table(path, config, config.split_column)
    held_out = _read_validation(Path(validation_path), table, config, path.name) if validation_path else None
    labels = _label_list(table, held_out, path.name) if config.task == "classification" else []
    if held_out is None:
        train_rows, validation_rows = _split_rows(table, config, path.name)
        train, validation = table.select(train_rows), table.select(validation_rows)
    else:
        train, validation = table.select(range(table.num_rows)), held_out.select(range(held_out.num_rows))
        for name, count in held_out.dropped.items():
            table.dropped[name] = table.dropped.get(name, 0) + count
    detected = DetectedFormat(
        task=config.task,
        kind=table.fmt.kind,
        columns=tuple(table.columns),
        num_train=train.num_rows,
        num_validation=validation.num_rows,
        labels=labels,
        file_format=table.file_format,
        source_columns=table.source_columns,
        ignored_columns=table.ignored,
        dropped_rows=table.dropped,
        notes=table.notes + (held_out.notes if held_out is not None else ()),
    )
    return DatasetDict({"train": train, "validation": validation}), detected


def _read_validation(path: Path, table: _Table, config: DataConfig, source: str) -> _Table:
    held_out = _read_table(path, DataConfig(**{**config.to_dict(), "max_rows": None}), None)
    if held_out.fmt.kind != table.fmt.kind:
        raise DataError(
            f"{path.name} holds {held_out.fmt.kind} data but {source} holds {table.fmt.kind}; "
            "give both files the same columns"
        )
    return held_out


def _label_list(table: _Table, held_out: _Table | None, source: str) -> list[str]:
    """Sorted label names of the training data; labels in the tables become those names (strings)."""
    names = _label_names(table.columns["label"], source, table.source_columns["label"])
    table.columns["label"] = [str(label) for label in table.columns["label"]]
    if held_out is not None:
        held_out.columns["label"] = [str(label) for label in held_out.columns["label"]]
        unseen = sorted(set(held_out.columns["label"]) - set(names))
        if unseen:
            raise DataError(
                f"validation labels {', '.join(unseen)} never occur in the training data of {source}; "
                "relabel them or add training rows with those labels"
            )
    return names


def _label_names(labels: list[int | str], source: str, column: str = "label") -> list[str]:
    """Sorted distinct labels as strings (numbers sort numerically); at least two are required."""
    distinct = set(labels)
    if all(isinstance(label, int) for label in distinct):
        names = [str(label) for label in sorted(distinct)]
    else:
        names = sorted({str(label) for label in distinct})
    if len(names) < 2:
        raise DataError(
            f"column {column!r} in {source} has only one class ({names[0]!r}); "
            "classification needs at least two different labels"
        )
    return names
