"""Reading user data files (CSV, TSV, JSON, JSONL, Parquet, TXT) and detecting their column format."""

from __future__ import annotations

import contextlib
import json
import math
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Columns = dict[str, list[Any]]

TASKS = ("causal-lm", "classification")
TEXT_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "text"}
EXTENSIONS = {**TEXT_EXTENSIONS, ".parquet": "parquet"}


class DataError(ValueError):
    """A problem with the user's data, stated as one sentence: what is wrong and how to fix it."""


@dataclass(frozen=True)
class ColumnFormat:
    """One accepted set of columns: `required` must all be present, `optional` may be."""

    kind: str
    task: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    noun: str

    @property
    def spelled(self) -> str:
        optional = "".join(f" (optional {name})" for name in self.optional)
        return " + ".join(self.required) + optional


# First match wins, so the more specific sets come first.
FORMATS = (
    ColumnFormat("messages", "causal-lm", ("messages",), (), "chat conversations"),
    ColumnFormat("prompt/response", "causal-lm", ("prompt", "response"), (), "prompt/response pairs"),
    ColumnFormat(
        "instruction/input/output", "causal-lm", ("instruction", "output"), ("input",), "instructions with outputs"
    ),
    ColumnFormat("question/answer", "causal-lm", ("question", "answer"), (), "question/answer pairs"),
    ColumnFormat("text", "causal-lm", ("text",), (), "plain texts"),
    ColumnFormat(
        "sentence pair/label", "classification", ("sentence1", "sentence2", "label"), (), "labelled sentence pairs"
    ),
    ColumnFormat("text/label", "classification", ("text", "label"), (), "labelled texts"),
)
KINDS = tuple(fmt.kind for fmt in FORMATS)
COLUMN_ORDER = ("messages", "prompt", "response", "instruction", "input", "output", "question", "answer")
COLUMN_ORDER += ("sentence1", "sentence2", "text", "label")


def format_for_kind(kind: str) -> ColumnFormat:
    """The ColumnFormat whose kind is `kind`."""
    for fmt in FORMATS:
        if fmt.kind == kind:
            return fmt
    raise DataError(f"unknown data kind {kind!r}; use one of {KINDS}")


@dataclass(frozen=True)
class DetectedFormat:
    """What load_table found: the task, the column set, the split sizes and (classification) the labels."""

    task: str
    kind: str
    columns: tuple[str, ...]
    num_train: int
    num_validation: int
    labels: list[str] = field(default_factory=list)
    file_format: str = ""
    source_columns: dict[str, str] = field(default_factory=dict)
    ignored_columns: tuple[str, ...] = ()
    dropped_rows: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what reading changed: long fields cut, rows past the limit left out
    description: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"task must be one of {TASKS}, got {self.task!r}")
        if format_for_kind(self.kind).task != self.task:
            raise DataError(f"kind {self.kind!r} does not belong to task {self.task!r}")
        if self.num_train < 0 or self.num_validation < 0:
            raise DataError("num_train and num_validation must be >= 0")
        if not self.description:
            object.__setattr__(self, "description", self._describe())

    def _describe(self) -> str:
        names = ", ".join(self.source_columns.get(name, name) for name in self.columns)
        text = f"{format_for_kind(self.kind).noun} (columns {names})"
        if self.labels:
            text += f" with {len(self.labels)} labels ({', '.join(self.labels)})"
        text += f": {self.num_train} train, {self.num_validation} validation"
        for name, count in self.dropped_rows.items():
            text += f"; dropped {count} rows with no {self.source_columns.get(name, name)}"
        if self.ignored_columns:
            text += f"; ignored columns {', '.join(self.ignored_columns)}"
        return "".join([text, *(f"; {note}" for note in self.notes)])

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- reading files


def read_columns(path: Path, max_file_bytes: int) -> tuple[Columns, str]:
    """Read a data file into {column name: values}; return it with the file format ("csv", "jsonl", ...)."""
    file_format = file_format_of(path)
    raw = _read_bytes(path, max_file_bytes)
    if file_format == "parquet":
        columns = _read_parquet(path, raw)
    else:
        text = _decode_text(path, raw)
        readers = {"csv": _read_delimited, "tsv": _read_delimited, "json": _read_json, "jsonl": _read_jsonl}
        columns = readers.get(file_format, _read_txt)(path, text)
    if not columns or not any(len(values) for values in columns.values()):
        raise DataError(f"{path.name} has column names but no data rows; add at least a few rows")
    return columns, file_format


def file_format_of(path: Path) -> str:
    """The file format implied by the extension, or a DataError for an unsupported one."""
    file_format = EXTENSIONS.get(path.suffix.lower())
    if file_format is None:
        accepted = ", ".join(sorted(EXTENSIONS))
        extension = path.suffix or "(none)"
        raise DataError(f"unsupported file extension {extension!r} for {path.name}; use one of {accepted}")
    return file_format


def _read_bytes(path: Path, max_file_bytes: int) -> bytes:
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist; check the path")
    size = path.stat().st_size
    if size > max_file_bytes:
        raise DataError(
            f"{path.name} is {_size(size)}, over the {_size(max_file_bytes)} limit; "
            "use a smaller file or raise max_file_bytes"
        )
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path.name} is empty; add some rows of data")
    return raw


def _size(num_bytes: int) -> str:
    if num_bytes < 10_000:
        return f"{num_bytes} bytes"
    return f"{num_bytes / 1e3:.1f} KB" if num_bytes < 10_000_000 else f"{num_bytes / 1e6:.1f} MB"


def _decode_text(path: Path, raw: bytes) -> str:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(f"{path.name} is UTF-16 encoded; re-save it as UTF-8")
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path.name} looks like a binary file, not text; export it as plain {path.suffix} text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path.name} is not valid UTF-8 (byte 0x{raw[err.start]:02x} on line {line}); "
            "re-save it with UTF-8 encoding"
        ) from None


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[str]:
    """Silence the datasets progress bars and logs; yield a throw-away cache folder."""
    import datasets  # imported here so that this module (and DataError) load without it

    bars_on, verbosity = datasets.is_progress_bar_enabled(), datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        with tempfile.TemporaryDirectory(prefix="red_explorer_data_") as cache_dir:
            yield cache_dir
    finally:
        datasets.logging.set_verbosity(verbosity)
        if bars_on:
            datasets.enable_progress_bars()


def _load_builder(path: Path, builder: str, what: str, hint: str, **options: Any) -> Columns:
    """Read `path` with a packaged datasets builder into memory, turning its failures into a DataError."""
    import datasets

    try:
        with _quiet_datasets() as cache_dir:
            table = datasets.load_dataset(
                builder, data_files=str(path), split="train", cache_dir=cache_dir, keep_in_memory=True, **options
            )
    except Exception as err:  # datasets wraps the parser's error; report the root cause
        cause = err
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise DataError(f"could not read {path.name} as {what} ({reason}); {hint}") from err
    return table.to_dict()


def _read_delimited(path: Path, text: str) -> Columns:
    if sum(1 for line in text.splitlines() if line.strip()) < 2:
        raise DataError(f"{path.name} has column names but no data rows; add at least a few rows")
    tab = file_format_of(path) == "tsv"
    return _load_builder(
        path,
        "csv",
        "TSV" if tab else "CSV",
        "check that every row has as many fields as the header and that fields holding the separator are quoted",
        delimiter="\t" if tab else ",",
    )


def _read_parquet(path: Path, raw: bytes) -> Columns:
    if raw[:4] != b"PAR1":
        raise DataError(f"{path.name} is not a Parquet file (no PAR1 header); save it with DataFrame.to_parquet")
    return _load_builder(path, "parquet", "Parquet", "re-save it with pandas or pyarrow")


def _read_json(path: Path, text: str) -> Columns:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several objects, one per line: it is JSON Lines
            return _read_jsonl(path, text)
        raise DataError(
            f"{path.name} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); fix the syntax"
        ) from None
    if isinstance(data, dict):
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(data) == 1 and lists and all(isinstance(item, dict) for item in lists[0]):
            data = lists[0]  # {"data": [{...}, ...]}
        elif len(lists) == len(data) and len({len(value) for value in lists}) == 1:
            return {str(name): list(values) for name, values in data.items()}  # {"column": [values]}
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise DataError(f'{path.name} must hold a list of objects such as [{{"prompt": ..., "response": ...}}]')
    return _records_to_columns(data)


def _read_jsonl(path: Path, text: str) -> Columns:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path.name} line {number} is not valid JSON ({err.msg}); each line must hold one JSON object"
            ) from None
        if not isinstance(record, dict):
            found = type(record).__name__
            raise DataError(f"{path.name} line {number} holds a {found}, not a JSON object; write one {{...}} per line")
        records.append(record)
    return _records_to_columns(records)


def _records_to_columns(records: list[dict]) -> Columns:
    names = list(dict.fromkeys(name for record in records for name in record))
    return {str(name): [record.get(name) for record in records] for name in names}


def _read_txt(path: Path, text: str) -> Columns:
    """One example per paragraph when blank lines separate blocks, most of several lines; else one per line."""
    blocks = [block.strip() for block in re.split(r"\n[ \t]*\n", text.strip()) if block.strip()]
    if len(blocks) > 1 and 2 * sum("\n" in block for block in blocks) >= len(blocks):
        return {"text": blocks}
    return {"text": [line.strip() for line in text.splitlines() if line.strip()]}


# ---------------------------------------------------------------- detecting and cleaning columns


def normalise_name(name: str) -> str:
    """Column names match case-insensitively, ignoring surrounding whitespace and a byte-order mark."""
    return str(name).replace("\ufeff", "").strip().lower()


def find_column(columns: Columns, wanted: str, source: str) -> str:
    """The name in `columns` that matches `wanted` case-insensitively, or a DataError."""
    for name in columns:
        if normalise_name(name) == normalise_name(wanted):
            return name
    found = ", ".join(columns)
    raise DataError(f"column {wanted!r} not found in {source} (found columns {found}); fix the column name")


def detect_columns(columns: Columns, task: str, source: str) -> tuple[ColumnFormat, dict[str, str]]:
    """Find the first accepted column set for `task`; return it and {canonical name: name in the file}."""
    by_name: dict[str, str] = {}
    for name in columns:
        key = normalise_name(name)
        if key in by_name:
            raise DataError(f"columns {by_name[key]!r} and {name!r} in {source} read as the same name; rename one")
        by_name[key] = name
    for fmt in FORMATS:
        if fmt.task == task and all(name in by_name for name in fmt.required):
            wanted = sorted(fmt.required + fmt.optional, key=COLUMN_ORDER.index)
            return fmt, {name: by_name[name] for name in wanted if name in by_name}
    accepted = "; ".join(fmt.spelled for fmt in FORMATS if fmt.task == task)
    other = [fmt.task for fmt in FORMATS if fmt.task != task and all(n in by_name for n in fmt.required)]
    hint = f" (these columns fit task {other[0]!r}: set task={other[0]!r})" if other else ""
    raise DataError(
        f"unknown columns in {source}: found {', '.join(map(str, columns))}, but task {task!r} accepts "
        f"{accepted}; rename your columns to one of these sets{hint}"
    )


def clean_columns(
    columns: Columns, fmt: ColumnFormat, mapping: dict[str, str], source: str
) -> tuple[Columns, dict[str, int], list[int]]:
    """Canonical columns without the rows missing a required value; also {column: rows missing} and the kept rows."""
    num_rows = len(next(iter(columns.values())))
    values = {name: _clean_values(name, columns[original], source) for name, original in mapping.items()}
    missing: dict[str, int] = {}
    for name in fmt.required:
        count = sum(value is None for value in values[name])
        if count == num_rows:
            raise DataError(
                f"required column {mapping[name]!r} in {source} has no value in any of its {num_rows} rows; fill it in"
            )
        if count:
            missing[name] = count
    keep = [row for row in range(num_rows) if all(values[name][row] is not None for name in fmt.required)]
    cleaned = {name: [column[row] for row in keep] for name, column in values.items()}
    for name in fmt.optional:
        if name in cleaned:
            cleaned[name] = ["" if value is None else value for value in cleaned[name]]
    return cleaned, missing, keep


def _is_missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def _clean_values(name: str, values: list[Any], source: str) -> list[Any]:
    if name == "messages":
        return [_clean_messages(value, row, source) for row, value in enumerate(values, start=1)]
    if name == "label":
        return [_clean_label(value) for value in values]
    return [None if _is_missing(value) else str(value).strip() for value in values]


def _clean_label(value: Any) -> int | str | None:
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else str(value).strip()


def _clean_messages(value: Any, row: int, source: str) -> list[dict[str, str]] | None:
    """A list of {role, content}, or None when the row has no assistant reply to learn."""
    if isinstance(value, str) and value.strip():
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(f"row {row} of column messages in {source} is not a JSON list of messages") from None
    if _is_missing(value) or value == []:
        return None
    shape = "a list of objects with 'role' and 'content'"
    if not isinstance(value, list):
        raise DataError(f"row {row} of column messages in {source} is a {type(value).__name__}; use {shape}")
    messages = []
    for message in value:
        if not isinstance(message, dict) or not {"role", "content"} <= set(message):
            raise DataError(f"row {row} of column messages in {source} has a message that is not {shape}")
        role = str(message["role"]).strip().lower()
        messages.append({"role": role, "content": "" if message["content"] is None else str(message["content"])})
    return messages if any(message["role"] == "assistant" for message in messages) else None
