"""Recipe comparisons with repeated seeds: candidates × tasks × budgets × seeds, saved after every cell.

A candidate is a method spec plus training settings (schedule, warm-up, per-vector learning rates, weight
decay, clipping), all options of the one training loop; a cell is one run of a candidate on a task at a budget
and seed. Results are summarised as mean ± sample standard deviation over seeds.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from red_explorer.core.registry import MethodSpec
from red_explorer.engine.training import TrainConfig


@dataclass
class Candidate:
    """One recipe: a method with its options, and TrainConfig settings over the task's own."""

    name: str
    method: str = "red"
    options: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)  # TrainConfig fields, e.g. {"scheduler": "cosine"}
    note: str = ""
    tasks: tuple[str, ...] = ()  # the tasks it applies to; empty: every task

    def applies_to(self, task: str) -> bool:
        return not self.tasks or task in self.tasks

    def spec(self) -> MethodSpec:
        return MethodSpec(self.method, **self.options)


@dataclass
class RecipeTask:
    """A task the candidates run on: its base budget, batch size and each method's measured best rate."""

    name: str
    rates: dict[str, float]  # method -> learning rate (its best in the measured sweep)
    steps: int = 30
    batch_size: int = 8

    def train_config(self, candidate: Candidate, steps: int, seed: int) -> TrainConfig:
        if candidate.method not in self.rates:
            raise ValueError(f"task {self.name!r} has no measured rate for {candidate.method!r}: add it to its rates")
        settings = {"learning_rate": self.rates[candidate.method]} | candidate.train
        return TrainConfig(epochs=float(steps), max_steps=steps, batch_size=self.batch_size, seed=seed, **settings)


def cell_key(task: str, candidate: str, steps: int, seed: int) -> str:
    return f"{task}|{candidate}|{steps}|{seed}"


RunCell = Callable[[RecipeTask, Candidate, TrainConfig], dict]  # -> {"metric": ..., "after": ..., ...}


def run_cells(
    cells: list[tuple[RecipeTask, Candidate, int, int]], path: str | Path, run_cell: RunCell, log=print
) -> dict:
    """Run every (task, candidate, steps, seed) cell not yet in ``path``; rewrite ``path`` after each one.

    A stopped run keeps every finished cell, and the next call resumes with the first missing one.
    """
    path = Path(path)
    results = json.loads(path.read_text()) if path.is_file() else {"cells": {}}
    for task, candidate, steps, seed in cells:
        key = cell_key(task.name, candidate.name, steps, seed)
        if key in results["cells"]:
            continue
        config = task.train_config(candidate, steps, seed)
        record = run_cell(task, candidate, config)
        results["cells"][key] = {
            "task": task.name,
            "candidate": candidate.name,
            "steps": steps,
            "seed": seed,
            "train": _settings(config),
            "spec": candidate.spec().to_dict(),
        } | record
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(results, indent=2) + "\n")
        partial.replace(path)  # atomic: a reader never sees half a file
        log(f"{key}: {record.get('metric')} {record.get('after', float('nan')):.4f}")
    return results


def _settings(config: TrainConfig) -> dict:
    keys = ("learning_rate", "max_steps", "batch_size", "warmup_ratio", "scheduler", "weight_decay")
    return {key: getattr(config, key) for key in keys} | {
        "decay_toward_start": config.decay_toward_start,
        "lr_factors": config.lr_factors,
        "max_grad_norm": config.max_grad_norm,
    }


@dataclass
class Summary:
    """One (task, candidate, budget) over its seeds."""

    task: str
    candidate: str
    steps: int
    metric: str
    higher_is_better: bool
    values: list[float]
    forgetting: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # training time of each run
    parameters: int = 0

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else math.nan

    def beats(self, other: Summary) -> bool:
        """Better than ``other`` by more than two standard errors of the difference (seed noise)."""
        noise = 2 * math.sqrt(_variance_of_mean(self) + _variance_of_mean(other))
        gain = self.mean - other.mean if self.higher_is_better else other.mean - self.mean
        return gain > noise

    def to_dict(self) -> dict:
        return asdict(self) | {"mean": self.mean, "std": self.std}


def _variance_of_mean(summary: Summary) -> float:
    count = len(summary.values)
    return summary.std**2 / count if count > 1 else math.inf


def summarise(results: dict) -> list[Summary]:
    """Cells grouped by (task, candidate, steps), in the order first run."""
    groups: dict[tuple, Summary] = {}
    for cell in results["cells"].values():
        key = (cell["task"], cell["candidate"], cell["steps"])
        if key not in groups:
            higher = cell["metric"] == "val_accuracy"
            groups[key] = Summary(*key, cell["metric"], higher, [], parameters=cell.get("method_parameters", 0))
        if math.isfinite(cell["after"]):
            groups[key].values.append(cell["after"])
            groups[key].seconds.append(cell.get("train_seconds", math.nan))
        if cell.get("forgetting") is not None:
            groups[key].forgetting.append(cell["forgetting"])
    return [summary for summary in groups.values() if summary.values]


def winners(summaries: list[Summary], baseline: str, steps: dict[str, int]) -> list[str]:
    """Candidates that beat ``baseline`` beyond seed noise on every task (at each task's base budget)."""
    at_base = {(s.task, s.candidate): s for s in summaries if s.steps == steps.get(s.task)}
    tasks = sorted({task for task, _ in at_base})
    names = sorted({name for _, name in at_base if name != baseline})
    return [
        name
        for name in names
        if tasks
        and all((task, name) in at_base and (task, baseline) in at_base for task in tasks)
        and all(at_base[task, name].beats(at_base[task, baseline]) for task in tasks)
    ]


def measure_cell(loaded, data, candidate: Candidate, config: TrainConfig, general: list | None = None) -> dict:
    """One run of ``candidate`` through the training path of ``train`` and ``sweep``; the base is left as it was.

    ``general``: general-text batches (``choice.forgetting.general_batches``) to measure forgetting on.
    """
    from red_explorer.choice.forgetting import measure_forgetting
    from red_explorer.engine.experiment import trained_run

    spec = candidate.spec()
    metric = "accuracy" if loaded.task == "classification" else "loss"
    with trained_run(loaded, data, spec, config) as run:
        record = {
            "metric": f"val_{metric}",
            "before": run.metrics_before[metric],
            "after": run.metrics_after[metric],
            "method_parameters": spec.entry.parameter_count(run.model),
            "trainable_parameters": run.trainable_parameters,
            "train_seconds": run.train_seconds,
            "stopped_reason": run.stopped_reason,
        }
        if general is not None:
            record |= measure_forgetting(run.model, spec, general, base=loaded.model).to_dict()
    return record
