"""Training a method on a user's data end to end: data in, metrics and a trained model out."""

from __future__ import annotations

import copy
import resource
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .distributed import is_main_process, wait_for_everyone
from .evaluation import evaluate
from .methods import DEFAULT_LEARNING_RATES, MethodSpec, apply_method, save_method
from .models import LoadedModel
from .training import Callback, TrainConfig, run_training, trainable_parameters


@dataclass
class PreparedData:
    """A user's file, read, detected, split and tokenised for one tokenizer."""

    raw: object  # datasets.DatasetDict with canonical columns
    detected: object  # data_formats.DetectedFormat
    tokenized: object  # datasets.DatasetDict of input_ids / attention_mask / labels
    dropped: dict[str, int]
    collator: object

    def train_batches(self, batch_size: int, seed: int) -> list[dict[str, torch.Tensor]]:
        from .data_batching import length_grouped_batches

        split = self.tokenized["train"]
        lengths = [len(ids) for ids in split["input_ids"]]
        return [self.collator([split[i] for i in batch]) for batch in length_grouped_batches(lengths, batch_size, seed)]

    def validation_batches(self, batch_size: int) -> list[dict[str, torch.Tensor]]:
        split = self.tokenized["validation"]
        order = sorted(range(split.num_rows), key=lambda i: len(split[i]["input_ids"]))
        return [self.collator([split[i] for i in order[s : s + batch_size]]) for s in range(0, len(order), batch_size)]


def prepare_data(path, tokenizer, data_config, validation_path=None) -> PreparedData:
    """Read ``path`` (see data.load_table), tokenise it and build the padding collator."""
    from .data import load_table, tokenize_dataset
    from .data_batching import make_collator

    raw, detected = load_table(path, data_config, validation_path)
    tokenized, dropped = tokenize_dataset(raw, detected, tokenizer, data_config)
    for name in ("train", "validation"):
        if tokenized[name].num_rows == 0:
            raise ValueError(f"no {name} example fits in max_length={data_config.max_length}; raise max_length")
    return PreparedData(raw, detected, tokenized, dropped, make_collator(tokenizer, data_config.task))


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
    overrides.setdefault("learning_rate", DEFAULT_LEARNING_RATES[spec.method])
    return TrainConfig(**overrides)


def _peak_memory_start(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory(device: torch.device) -> int:
    """CUDA: peak allocated bytes of this run; CPU: the process's peak resident memory."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(usage if sys.platform == "darwin" else usage * 1024)


def train_method(
    loaded: LoadedModel,
    data: PreparedData,
    spec: MethodSpec,
    config: TrainConfig,
    callback: Callback | None = None,
    stop: threading.Event | None = None,
    copy_base: bool = True,
) -> RunResult:
    """Attach ``spec`` to (a copy of) the base model, train it, and evaluate before and after."""
    base = copy.deepcopy(loaded.model) if copy_base else loaded.model
    model = apply_method(base, spec, loaded.task, loaded.head_parameter_names)
    validation = data.validation_batches(config.batch_size)
    before = evaluate(model, validation, loaded.task)
    _peak_memory_start(loaded.device)
    loop = run_training(
        model,
        lambda epoch: data.train_batches(config.batch_size, config.seed + epoch),
        lambda: validation,
        loaded.task,
        config,
        callback,
        stop,
    )
    peak = _peak_memory(loaded.device)
    after = evaluate(model, validation, loaded.task)
    return RunResult(
        spec=spec,
        train_config=config,
        metrics_before=before,
        metrics_after=after,
        trainable_parameters=sum(p.numel() for p in trainable_parameters(model).values()),
        train_seconds=loop.train_seconds,
        peak_memory_bytes=peak,
        tokens_per_second=loop.tokens_per_second,
        train_loss=loop.train_loss,
        eval_history=loop.eval_history,
        stopped_reason=loop.stopped_reason,
        model=model,
        num_processes=loop.num_processes,
    )


def save_run(result: RunResult, loaded: LoadedModel, directory: str | Path) -> Path:
    """Write the trained method (its own format) and metrics.json into ``directory``.

    Under ``accelerate launch`` only the main process writes (every process holds the same trained
    parameters); the others wait until the files are there.
    """
    import json

    directory = Path(directory)
    if is_main_process():
        save_method(result.model, result.spec, directory, loaded.name, loaded.head_parameter_names)
        (directory / "metrics.json").write_text(json.dumps(result.metrics(), indent=2) + "\n")
    wait_for_everyone()
    return directory
