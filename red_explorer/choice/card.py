"""The method card: every method at its best learning rate in one table (results.md), from a sweep's results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

CARD_FILE = "results.md"


def _number(value) -> str:
    return f"{value:.4f}"


def _signed(value) -> str:
    return f"{value:+.4f}"


def _count(value) -> str:
    return f"{value:,}"


def _bytes(value) -> str:
    if value < 1024:
        return f"{value} B"
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _ratio(value) -> str:
    return f"{value:.2f}×"


def _seconds(value) -> str:
    return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.1f} ms"


Column = tuple[str, str, Callable[[object], str]]  # record key, header, how to show a value (str: text, left)
CARD_COLUMNS: tuple[Column, ...] = (
    ("label", "method", str),
    ("learning_rate", "best lr", lambda value: f"{value:g}"),
    ("before", "{metric} before", _number),
    ("after", "{metric} after", _number),
    ("trainable_parameters", "trainable parameters", _count),
    ("seconds_per_step", "time / step", _seconds),
    ("peak_memory_bytes", "peak memory", _bytes),
    ("saved_bytes", "saved size", _bytes),
    ("generation_overhead_attached", "generation vs base (attached)", _ratio),
    ("generation_overhead_merged", "generation vs base (merged)", _ratio),
    ("forgetting", "forgetting (Δ general loss)", _signed),
)
POINT_COLUMNS: tuple[Column, ...] = (
    ("label", "method", str),
    ("learning_rate", "lr", lambda value: f"{value:g}"),
    ("after", "{metric} after", _number),
    ("forgetting", "forgetting", _signed),
    ("seconds_per_step", "time / step", _seconds),
    ("stopped_reason", "run", str),
)
BUDGET_COLUMNS: tuple[Column, ...] = (
    ("label", "method", str),
    ("budget", "steps", lambda value: f"{value}"),
    ("learning_rate", "lr", lambda value: f"{value:g}"),
    ("after", "{metric} after", _number),
    ("forgetting", "forgetting", _signed),
    ("train_seconds", "training time", _seconds),
    ("stopped_reason", "run", str),
)
RELATIVE_COLUMNS: tuple[Column, ...] = (
    ("label", "method", str),
    ("after", "{metric} after", _number),
    ("method_parameters", "method parameters", _count),
    ("parameters_ratio", "parameters (× first)", lambda value: f"{value:.1f}"),
    ("train_seconds", "training time", _seconds),
    ("time_ratio", "time (× first)", lambda value: f"{value:.2f}"),
)


def card_rows(results: dict) -> list[dict]:
    """One row per swept method spec: its best point (with the method's cost), in the order swept."""
    return sorted(results["best"], key=lambda record: record["spec_index"])


def budget_rows(results: dict) -> list[dict]:
    """The budget curve: each method's best point and its best rate at the other budgets, by method then steps."""
    if not results.get("budget_points"):
        return []
    rows = card_rows(results) + results["budget_points"]
    return sorted(rows, key=lambda record: (record["spec_index"], record.get("budget") or 0))


def relative_rows(results: dict) -> list[dict]:
    """The card's rows with method parameters and training time as multiples of the first row's (e.g. RED's)."""
    rows = card_rows(results)
    if not rows:
        return []
    first = rows[0]
    return [
        row
        | {
            "parameters_ratio": _share(row.get("method_parameters"), first.get("method_parameters")),
            "time_ratio": _share(row.get("train_seconds"), first.get("train_seconds")),
        }
        for row in rows
    ]


def _share(value, reference) -> float | None:
    return value / reference if value is not None and reference else None


def markdown_table(records: list[dict], columns: tuple[Column, ...], metric: str) -> str:
    """A markdown table of ``records``; a value a record lacks shows as —."""
    shown = [column for column in columns if any(column[0] in record for record in records)]
    header = "| " + " | ".join(title.format(metric=metric) for _, title, _ in shown) + " |"
    rule = "|" + "|".join("---" if show is str else "---:" for _, _, show in shown) + "|"
    lines = [header, rule]
    for record in records:
        cells = ["—" if record.get(key) is None else show(record[key]) for key, _, show in shown]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fair_sections(results: dict, metric: str) -> list[str]:
    """Per parameter and per second (the card against its first row), then the budget curve when swept."""
    parts, relative = [], relative_rows(results)
    if len(relative) > 1 and relative[0].get("method_parameters"):
        parts += [
            "",
            "## Per parameter and per second",
            "",
            f"Each method's own parameters (a classification head excluded) and training time as multiples of "
            f"{relative[0]['label']}'s: a fair comparison holds one of them equal (e.g. LoRA r=1 or IA3 against RED; "
            "the budget curve's training times for equal seconds).",
            "",
            markdown_table(relative, RELATIVE_COLUMNS, metric),
        ]
    curve = budget_rows(results)
    if curve:
        parts += [
            "",
            "## Budget curve",
            "",
            "Each method's best rate (chosen at the sweep's own run length) trained again for each budget: separate "
            "runs from the base, each with its warm-up and decay over its own steps.",
            "",
            markdown_table(curve, BUDGET_COLUMNS, metric),
        ]
    return parts


def card_markdown(results: dict) -> str:
    """results.md: the method card (best learning rate per method), then every point of the sweep."""
    metric, direction = results["metric"], "higher" if results["higher_is_better"] else "lower"
    train = results["config"]["train"]
    steps = f"{train['max_steps']} steps" if train.get("max_steps") else f"{train['epochs']:g} epochs"
    parts = [
        "# Method card",
        "",
        f"Task {results['task']}; every method at its best learning rate by {metric} ({direction} is better), "
        f"{steps}, batch {train['batch_size']}, seed {train['seed']}. Time per step is the median after the "
        "first step(s); generation is the time to generate the same tokens over the base model's time; "
        "forgetting is the rise of the mean per-token loss on general text the task does not contain. "
        "Peak memory is what the run added at its peak: on a GPU the allocator's peak over the run's start, on a "
        "CPU the rise of resident memory, which misses memory an earlier, larger run freed (it reads low after "
        "full fine-tuning).",
        "",
        markdown_table(card_rows(results), CARD_COLUMNS, metric) if results["best"] else "No point completed.",
        *_fair_sections(results, metric),
        "",
        "## Every learning rate",
        "",
        markdown_table(results["points"], POINT_COLUMNS, metric),
    ]
    notes = [f"- {row['label']}: {row['merge_note']}" for row in card_rows(results) if row.get("merge_note")]
    if notes:
        parts += ["", "Not merged:", "", *notes]
    refused = [f"- {label}: {reason}" for label, reason in results.get("refused", {}).items()]
    if refused:
        parts += ["", "Refused this model (not trained):", "", *refused]
    if results.get("stopped"):
        parts += ["", "The sweep was stopped before it finished."]
    return "\n".join(parts) + "\n"


def write_card(results: dict, directory: str | Path) -> Path:
    """Write results.md into ``directory``; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CARD_FILE
    path.write_text(card_markdown(results))
    return path
