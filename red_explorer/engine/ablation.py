"""Ablations as data: a list of method specs in, one table row per run out (the paper's Tables 6-7)."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from red_explorer.core.registry import MethodSpec
from red_explorer.engine.experiment import default_train_config, trained_run
from red_explorer.engine.training import StepEvent
from red_explorer.models.loading import LoadedModel

if TYPE_CHECKING:
    from red_explorer.data.prepared import PreparedData

SITE_SETS = {"ffn": ["ffn"], "attn": ["attn"], "ffn+attn": ["ffn", "attn"]}


def ablation_grid(
    variants=("full", "scale", "bias"), site_sets=("ffn", "attn", "ffn+attn"), lora: bool = True
) -> list[MethodSpec]:
    """RED variants × sites, plus a LoRA baseline row."""
    specs = [MethodSpec("red", variant=v, sites=SITE_SETS[s]) for v in variants for s in site_sets]
    return specs + ([MethodSpec("lora")] if lora else [])


def parse_row(text: str) -> MethodSpec:
    """'red:full:ffn', 'red:bias:ffn+attn', 'tare:ffn', 'lora' or 'lora:16' as a MethodSpec."""
    parts = text.strip().lower().split(":")
    try:
        if parts[0] == "red" and len(parts) == 3 and parts[2] in SITE_SETS:
            return MethodSpec("red", variant=parts[1], sites=SITE_SETS[parts[2]])
        if parts[0] == "tare" and len(parts) <= 2:
            return MethodSpec("tare", sites=SITE_SETS[parts[1]] if len(parts) == 2 else ["ffn"])
        if parts[0] == "lora" and len(parts) <= 2:
            return MethodSpec("lora", rank=int(parts[1]) if len(parts) == 2 else 8)
        if parts == ["full"]:
            return MethodSpec("full")
    except (KeyError, ValueError):
        pass
    raise ValueError(
        f"cannot read ablation row {text!r}: use red:VARIANT:SITES (VARIANT full|scale|bias, SITES ffn|attn|ffn+attn), "
        "tare[:SITES], lora[:RANK] or full"
    )


def result_row(run, task: str) -> dict:
    """One table row: what was trained, its cost, and its validation metric before/after."""
    metric = "accuracy" if task == "classification" else "loss"
    return {
        "method": run.spec.method,
        "label": run.spec.label,
        "variant": getattr(run.spec.options, "variant", ""),
        "sites": "+".join(getattr(run.spec.options, "sites", [])),
        "trainable_parameters": run.trainable_parameters,
        "metric": f"val_{metric}",
        "before": run.metrics_before[metric],
        "after": run.metrics_after[metric],
        "val_loss_before": run.metrics_before["loss"],
        "val_loss_after": run.metrics_after["loss"],
        "train_seconds": round(run.train_seconds, 3),
        "peak_memory_bytes": run.peak_memory_bytes,
        "stopped_reason": run.stopped_reason,
    }


def run_ablation(
    loaded: LoadedModel,
    data: PreparedData,
    specs: list[MethodSpec],
    train_options: dict,
    on_progress: Callable[[int, int, StepEvent | None], None] | None = None,
    stop: threading.Event | None = None,
) -> list[dict]:
    """Train every spec through the one training path, each from the base (``trained_run``); returns the rows."""
    rows = []
    for index, spec in enumerate(specs):
        if stop is not None and stop.is_set():
            break
        if on_progress:
            on_progress(index, len(specs), None)
        config = default_train_config(spec, **train_options)
        progress = (lambda event, i=index: on_progress(i, len(specs), event)) if on_progress else None
        with trained_run(loaded, data, spec, config, progress, stop) as run:
            rows.append(result_row(run, loaded.task))
    return rows


def write_results(rows: list[dict], directory: str | Path) -> Path:
    """results.csv and results.json in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    with open(directory / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["method"])
        writer.writeheader()
        writer.writerows(rows)
    return directory
