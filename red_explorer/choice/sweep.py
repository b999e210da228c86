"""Learning-rate sweeps: per method a log-spaced grid around its default rate, every point through one training path."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from red_explorer.choice.cost import (
    CostConfig,
    StepTimer,
    folder_bytes,
    generation_overhead,
    prompt_ids,
    saved_bytes,
    steady_step_seconds,
)
from red_explorer.choice.forgetting import general_batches, general_paragraphs, measure_forgetting
from red_explorer.core.method import Method
from red_explorer.core.registry import MethodSpec, load_method, save_method
from red_explorer.engine.experiment import RunResult, trained_run
from red_explorer.engine.training import StepEvent, TrainConfig, epochs_for
from red_explorer.models.loading import LoadedModel

if TYPE_CHECKING:
    from red_explorer.data.prepared import PreparedData

AUTO_FACTORS = (0.1, 1 / 3, 1.0, 3.0, 10.0)
RESULTS_FILE = "results.json"
Progress = Callable[[int, int, StepEvent | None], None]
PointHook = Callable[[dict, RunResult], None]  # (the point's record, its run while its trained model is there)


@dataclass
class SweepConfig:
    """Which learning rates each method tries, the training every point shares, and what is measured.

    With ``learning_rates="auto"`` a method tries lr_i = default_learning_rate × factor_i, a log-spaced
    grid around its own default (×1/10 .. ×10); a list of rates is tried by every method alike.
    """

    learning_rates: str | list[float] = field(
        default="auto", metadata={"help": "'auto' (each method's default × factors) or rates for every method"}
    )
    factors: list[float] = field(default_factory=lambda: list(AUTO_FACTORS))
    budgets: list[int] = field(
        default_factory=list, metadata={"help": "more run lengths (steps): each method's best rate trains again"}
    )
    train: TrainConfig = field(default_factory=TrainConfig)  # its learning_rate is replaced at every point
    forgetting: bool = field(default=True, metadata={"help": "general-text loss before/after (causal LMs)"})
    general_text: str | None = field(default=None, metadata={"help": "paragraph file; None = the bundled one"})
    general_max_length: int = 128
    cost: CostConfig = field(default_factory=CostConfig)

    def __post_init__(self) -> None:
        if isinstance(self.learning_rates, str) and self.learning_rates != "auto":
            raise ValueError(f"learning_rates must be 'auto' or a list of rates, got {self.learning_rates!r}")
        if not isinstance(self.learning_rates, str):
            self.learning_rates = _positive(self.learning_rates, "learning_rates")
        self.factors = _positive(self.factors, "factors")
        self.budgets = _budgets(self.budgets, self.train.max_steps)
        if self.general_max_length < 2:
            raise ValueError("general_max_length must be >= 2 tokens (one token predicts the next)")

    def rates_for(self, method: Method) -> list[float]:
        """The learning rates ``method`` tries: default × factors (3 significant digits), or the given list."""
        if self.learning_rates == "auto":
            return [float(f"{method.default_learning_rate * factor:.3g}") for factor in self.factors]
        return list(self.learning_rates)

    def to_dict(self) -> dict:
        return asdict(self)


def _budgets(values, max_steps: int | None) -> list[int]:
    """The budgets besides the sweep's own run length, sorted; they need the sweep to count steps too."""
    if not values:
        return []
    if not max_steps:
        raise ValueError("budgets are step counts: give the sweep's train config max_steps (--max-steps) too")
    try:
        whole = all(float(value).is_integer() and float(value) >= 1 for value in values)
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ValueError(f"budgets must be whole numbers of steps >= 1, got {values!r}")
    return sorted({int(value) for value in values} - {max_steps})


def _positive(values, name: str) -> list[float]:
    try:
        values = [float(value) for value in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of positive numbers, got {values!r}") from None
    if not values or not all(value > 0 and math.isfinite(value) for value in values):
        raise ValueError(f"{name} must be a non-empty list of positive numbers, got {values}")
    return values


@dataclass
class SweepResult:
    """Every point of a sweep, and per method spec its best point with the method's full cost."""

    task: str
    metric: str  # "val_loss" (causal-lm: lower is better) or "val_accuracy" (classification: higher is better)
    higher_is_better: bool
    points: list[dict]
    best: list[dict]
    config: dict
    stopped: bool = False
    refused: dict[str, str] = field(default_factory=dict)  # spec label -> why the method refused this model
    budget_points: list[dict] = field(default_factory=list)  # each method's best rate at the other budgets

    def to_dict(self) -> dict:
        return asdict(self)


def run_sweep(
    loaded: LoadedModel,
    data: PreparedData,
    specs: list[MethodSpec],
    config: SweepConfig | None = None,
    on_progress: Progress | None = None,
    stop: threading.Event | None = None,
    on_point: PointHook | None = None,
    finish_point: bool = False,
) -> SweepResult:
    """Train every spec at every rate of its grid (same steps, seed and data; each point starts from the base).

    The best point of a spec has the lowest validation loss (causal-lm) or the highest validation
    accuracy (classification) among its points that completed with a finite metric; the best point
    also carries the method's saved size and generation overhead. ``on_progress(point, points, event)``
    reports each point's start (event None) and its steps; ``stop`` ends the sweep after the current step,
    or after the current point with ``finish_point``. ``on_point(record, run)`` sees each point as it ends
    (e.g. to keep its run), while the run's trained model is still there.
    """
    config = config or SweepConfig()
    higher = loaded.task == "classification"
    sweep = _Sweep(loaded, data, config, "accuracy" if higher else "loss", higher, on_progress, stop)
    sweep.on_point, sweep.finish_point = on_point, finish_point
    sweep.total = sum(len(config.rates_for(spec.entry)) + len(config.budgets) for spec in specs)
    sweep.general = _general_batches(loaded, config)
    for index, spec in enumerate(specs):
        if sweep.stopped():
            break
        sweep.run_spec(index, spec)
    metric = f"val_{sweep.metric}"
    result = SweepResult(loaded.task, metric, higher, sweep.points, sweep.best, config.to_dict(), sweep.stopped())
    result.refused, result.budget_points = sweep.refused, sweep.budget_points
    return result


@dataclass
class _Sweep:
    """A sweep under way: what every point shares, and the records so far."""

    loaded: LoadedModel
    data: PreparedData
    config: SweepConfig
    metric: str  # "loss" or "accuracy"
    higher_is_better: bool
    on_progress: Progress | None
    stop: threading.Event | None
    total: int = 0
    general: list | None = None  # general-text batches (causal LMs), or None: no forgetting measured
    points: list[dict] = field(default_factory=list)
    best: list[dict] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    budget_points: list[dict] = field(default_factory=list)
    on_point: PointHook | None = None
    finish_point: bool = False  # True: ``stop`` is heeded between points only, each point runs to its end

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def run_spec(self, index: int, spec: MethodSpec) -> None:
        """Every rate of one spec's grid; its best point joins ``best`` with the method's cost."""
        champion: _Champion | None = None
        with tempfile.TemporaryDirectory(prefix="red-explorer-sweep-") as folder:
            for lr in self.config.rates_for(spec.entry):
                if self.stopped():
                    break
                try:
                    champion = self.train_point(index, spec, lr, champion, Path(folder) / str(len(self.points)))
                except ValueError as error:  # the method refuses this model (e.g. BitFit on a model without biases)
                    if champion is not None:
                        raise
                    self.refused[spec.label] = str(error)
                    return
            if champion is not None:
                costs = {} if self.stopped() else self.method_costs(spec, champion)
                self.best.append(champion.record | costs)
                self.run_budgets(index, spec, champion.record["learning_rate"])

    def run_budgets(self, index: int, spec: MethodSpec, lr: float) -> None:
        """The best rate again at every other budget: separate runs, each with its own schedule over its steps."""
        train = self.config.train
        for steps in self.config.budgets:
            if self.stopped():
                return
            timer = self.budget_timer()
            config = replace(train, learning_rate=lr, max_steps=steps, epochs=epochs_for(train.epochs, steps))
            with trained_run(self.loaded, self.data, spec, config, timer, self.stop) as run:
                self.budget_points.append(self.record(run, index, lr, timer.seconds))

    def budget_timer(self) -> StepTimer:
        """Reports a budget point's start and its steps, numbered after every point so far."""
        position, report = len(self.points) + len(self.budget_points), self.on_progress
        if report:
            report(position, self.total, None)
        return StepTimer((lambda event: report(position, self.total, event)) if report else None)

    def train_point(
        self, index: int, spec: MethodSpec, lr: float, champion: _Champion | None, folder: Path
    ) -> _Champion | None:
        """One run at ``lr`` (on the base itself; full fine-tuning on a copy); returns the best point so far.

        A better point than ``champion`` is kept: a detachable method saved into ``folder`` (kilobytes),
        full fine-tuning as its trained copy.
        """
        position, report = len(self.points), self.on_progress
        if report:
            report(position, self.total, None)
        forward = (lambda event: report(position, self.total, event)) if report else None
        timer = StepTimer(forward)
        stop = None if self.finish_point else self.stop
        config = replace(self.config.train, learning_rate=lr)
        with trained_run(self.loaded, self.data, spec, config, timer, stop) as run:
            record = self.record(run, index, lr, timer.seconds)
            self.points.append(record)
            if self.on_point:
                self.on_point(record, run)
            if not _eligible(record) or (champion is not None and not self.better(record, champion.record)):
                return champion
            if spec.entry.saves_whole_model:
                return _Champion(record, model=run.model)
            save_method(run.model, spec, folder, self.loaded.base_name, self.loaded.head_parameter_names)
        if champion is not None and champion.folder is not None:
            shutil.rmtree(champion.folder)
        return _Champion(record, folder=folder)

    def record(self, run: RunResult, index: int, lr: float, step_seconds: list[float]) -> dict:
        """One point: what was trained at which rate, its metric before/after, its cost, its forgetting."""
        spec, metric = run.spec, self.metric
        record = {
            "spec_index": index,
            "method": spec.method,
            "label": spec.label,
            "spec": spec.to_dict(),
            "learning_rate": lr,
            "default_learning_rate": spec.entry.default_learning_rate,
            "metric": f"val_{metric}",
            "before": run.metrics_before[metric],
            "after": run.metrics_after[metric],
            "val_loss_before": run.metrics_before["loss"],
            "val_loss_after": run.metrics_after["loss"],
            "trainable_parameters": run.trainable_parameters,
            "method_parameters": spec.entry.parameter_count(run.model),
            "steps": len(run.train_loss),
            "budget": run.train_config.max_steps,
            "seconds_per_step": _steady(step_seconds, self.config.cost.skip_steps),
            "train_seconds": run.train_seconds,
            "peak_memory_bytes": run.peak_memory_bytes,
            "stopped_reason": run.stopped_reason,
        }
        if self.general is not None:
            record |= measure_forgetting(run.model, spec, self.general, base=self.loaded.model).to_dict()
        return record

    def better(self, record: dict, other: dict) -> bool:
        return record["after"] > other["after"] if self.higher_is_better else record["after"] < other["after"]

    def method_costs(self, spec: MethodSpec, champion: _Champion) -> dict:
        """What does not depend on the rate, measured once on the best point: saved size, generation overhead."""
        loaded, cost = self.loaded, self.config.cost
        if champion.folder is not None:
            costs = {"saved_bytes": folder_bytes(champion.folder)}
        else:
            costs = {"saved_bytes": saved_bytes(champion.model, spec, loaded.base_name, loaded.head_parameter_names)}
        if loaded.task == "causal-lm" and cost.new_tokens > 0:
            ids = prompt_ids(loaded.tokenizer, general_paragraphs(self.config.general_text)[0], cost.prompt_tokens)
            pad = loaded.tokenizer.pad_token_id
            pad = loaded.tokenizer.eos_token_id if pad is None else pad
            if champion.model is not None:
                costs |= generation_overhead(champion.model, spec, loaded.model, ids, cost, pad).to_dict()
            else:
                trained, _ = load_method(loaded.model, champion.folder)
                try:
                    costs |= generation_overhead(trained, spec, None, ids, cost, pad).to_dict()
                finally:
                    spec.entry.detach(trained)
        return costs


@dataclass
class _Champion:
    """A spec's best point so far: its record, and its trained method (saved in ``folder``, or the whole ``model``)."""

    record: dict
    folder: Path | None = None
    model: nn.Module | None = None


def _steady(seconds: list[float], skip_steps: int) -> float | None:
    return steady_step_seconds(seconds, skip_steps) if seconds else None


def _eligible(record: dict) -> bool:
    """A point that can be the best: it completed its steps and its metric is a number."""
    return record["stopped_reason"] == "completed" and math.isfinite(record["after"])


def _general_batches(loaded: LoadedModel, config: SweepConfig) -> list | None:
    if loaded.task != "causal-lm" or not config.forgetting:
        return None
    paragraphs = general_paragraphs(config.general_text)
    return general_batches(loaded.tokenizer, paragraphs, config.general_max_length, config.train.batch_size)


def write_results(result: SweepResult, directory: str | Path) -> Path:
    """``results.json`` in ``directory``: every point, the best point per method, the sweep's settings."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RESULTS_FILE
    path.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return path


def read_results(path: str | Path) -> dict:
    """A results.json written by ``write_results`` (a folder holding one, or the file)."""
    path = Path(path)
    return json.loads((path / RESULTS_FILE if path.is_dir() else path).read_text())
