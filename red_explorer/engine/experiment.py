"""Training a method on a user's data end to end: data in, metrics and a trained model out."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from red_explorer.core.adapters import head_modules
from red_explorer.core.heads import keep_head, restore_head
from red_explorer.core.registry import MethodSpec, apply_method, save_method
from red_explorer.engine.compiled import pad_multiple
from red_explorer.engine.distributed import is_main_process, shard_model, wait_for_everyone
from red_explorer.engine.evaluation import evaluate
from red_explorer.engine.memory import PeakMemory
from red_explorer.engine.training import Callback, TrainConfig, run_training, trainable_parameters
from red_explorer.models.loading import LoadedModel

if TYPE_CHECKING:
    from red_explorer.data.prepared import PreparedData


@dataclass
class RunResult:
    """What one training run produced; ``model`` is the trained model (not serialised)."""

    spec: MethodSpec
    train_config: TrainConfig
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    trainable_parameters: int
    train_seconds: float
    peak_memory_bytes: int
    tokens_per_second: float
    train_loss: list[float]
    eval_history: list[dict]
    stopped_reason: str
    model: nn.Module = field(repr=False, default=None)
    num_processes: int = 1  # > 1 when trained under `accelerate launch` (DDP)

    def metrics(self) -> dict:
        """The content of metrics.json."""
        record = {
            "method": self.spec.label,
            "spec": self.spec.to_dict(),
            "train_config": self.train_config.to_dict(),
            "trainable_parameters": self.trainable_parameters,
            "train_seconds": self.train_seconds,
            "peak_memory_bytes": self.peak_memory_bytes,
            "tokens_per_second": self.tokens_per_second,
            "num_processes": self.num_processes,
            "stopped_reason": self.stopped_reason,
            "train_loss": self.train_loss,
            "eval_history": self.eval_history,
        }
        for name, value in self.metrics_before.items():
            record[f"val_{name}_before"] = value
        for name, value in self.metrics_after.items():
            record[f"val_{name}_after"] = value
        return record


def default_train_config(spec: MethodSpec, **overrides) -> TrainConfig:
    """A TrainConfig with the method's usual learning rate unless one is given."""
    overrides.setdefault("learning_rate", spec.entry.default_learning_rate)
    return TrainConfig(**overrides)


def train_method(
    loaded: LoadedModel,
    data: PreparedData,
    spec: MethodSpec,
    config: TrainConfig,
    callback: Callback | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Attach ``spec`` to ``loaded.model`` itself, train it, and evaluate before and after.

    The model keeps the trained method (``trained_run`` gives the base back afterwards); if training fails, the
    method is taken off again.
    """
    torch.manual_seed(config.seed)  # what the method initialises at random (TARE selectors, LoRA's A) is seeded
    model = shard_model(apply_method(loaded.model, spec, loaded.task, loaded.head_parameter_names))  # FSDP only
    try:
        validation = data.validation_batches(config.batch_size)
        before = evaluate(model, validation, loaded.task)
        with PeakMemory(loaded.device) as memory:
            loop = run_training(
                model,
                lambda epoch: data.train_batches(config.batch_size, config.seed + epoch, pad_multiple(config.compile)),
                lambda: validation,
                loaded.task,
                config,
                callback,
                stop,
            )
        after = evaluate(model, validation, loaded.task)
    except BaseException:
        if not spec.entry.saves_whole_model:
            spec.entry.detach(model)
        raise
    return RunResult(
        spec=spec,
        train_config=config,
        metrics_before=before,
        metrics_after=after,
        trainable_parameters=sum(p.numel() for p in trainable_parameters(model).values()),
        train_seconds=loop.train_seconds,
        peak_memory_bytes=memory.peak_bytes,
        tokens_per_second=loop.tokens_per_second,
        train_loss=loop.train_loss,
        eval_history=loop.eval_history,
        stopped_reason=loop.stopped_reason,
        model=model,
        num_processes=loop.num_processes,
    )


@contextmanager
def trained_run(
    loaded: LoadedModel,
    data: PreparedData,
    spec: MethodSpec,
    config: TrainConfig,
    callback: Callback | None = None,
    stop: threading.Event | None = None,
) -> Iterator[RunResult]:
    """Train ``spec`` and hold its run for the block; afterwards ``loaded.model`` is the base model again.

    A method that comes off (every one but full fine-tuning) trains ``loaded.model`` itself, with no copy,
    and is detached after the block, the weights of a new classification head and the train/eval mode put back
    as they were; full fine-tuning trains a copy of the base, freed with the run.
    """
    if spec.entry.saves_whole_model:
        yield train_method(replace(loaded, model=copy.deepcopy(loaded.model)), data, spec, config, callback, stop)
        return
    training = loaded.model.training
    head = keep_head(loaded.model, head_modules(loaded.head_parameter_names) or [])
    try:
        result = train_method(loaded, data, spec, config, callback, stop)
        try:
            yield result
        finally:
            spec.entry.detach(result.model)
    finally:
        restore_head(loaded.model, head)
        loaded.model.train(training)


def save_run(result: RunResult, loaded: LoadedModel, directory: str | Path) -> Path:
    """Write the trained method (its own format) and metrics.json into ``directory``.

    Under ``accelerate launch`` only the main process writes (every process holds the same trained
    parameters); the others wait until the files are there.
    """
    import json

    directory = Path(directory)
    if is_main_process():
        save_method(result.model, result.spec, directory, loaded.base_name, loaded.head_parameter_names)
        (directory / "metrics.json").write_text(json.dumps(result.metrics(), indent=2) + "\n")
    wait_for_everyone()
    return directory
