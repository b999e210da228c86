"""The one training loop every method goes through, reporting through callbacks and stoppable."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from transformers import get_scheduler

from red_explorer.engine.distributed import Runtime
from red_explorer.engine.evaluation import evaluate, move

SNAPSHOT_LIMIT = 20_000_000  # methods with fewer trainable parameters keep a copy to roll back to


@dataclass
class TrainConfig:
    """Optimisation settings shared by all methods (AdamW, warmup then linear or cosine decay)."""

    learning_rate: float = 1e-2
    epochs: float = 1.0
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimizer steps"})
    batch_size: int = 8
    gradient_accumulation: int = 1
    warmup_ratio: float = 0.06
    scheduler: str = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int | None = field(default=None, metadata={"help": "validation loss every N steps"})
    keep: str = field(default="last", metadata={"help": "'last' or 'best' (lowest validation loss)"})
    seed: int = 0
    mixed_precision: bool = True  # bf16 autocast on CUDA for fp32 models

    def __post_init__(self) -> None:
        if not (self.learning_rate > 0 and self.batch_size >= 1 and self.gradient_accumulation >= 1):
            raise ValueError("learning_rate must be > 0, batch_size and gradient_accumulation >= 1")
        if self.epochs <= 0 and not self.max_steps:
            raise ValueError("epochs must be > 0 (or give max_steps)")
        if self.scheduler not in ("linear", "cosine", "constant"):
            raise ValueError(f"scheduler must be linear, cosine or constant, got {self.scheduler!r}")
        if self.keep not in ("last", "best"):
            raise ValueError(f"keep must be 'last' or 'best', got {self.keep!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepEvent:
    step: int
    total_steps: int
    loss: float
    learning_rate: float
    tokens_per_second: float


@dataclass
class EvalEvent:
    step: int
    total_steps: int
    metrics: dict[str, float]


Callback = Callable[[StepEvent | EvalEvent], None]


@dataclass
class LoopResult:
    train_loss: list[float]
    eval_history: list[dict]
    steps: int
    stopped_reason: str  # "completed", "stopped by user" or "non-finite loss at step N"
    train_seconds: float
    tokens_per_second: float  # over all processes
    num_processes: int = 1  # > 1 under `accelerate launch` (DDP)


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def _snapshot(parameters: dict[str, nn.Parameter]) -> dict[str, torch.Tensor] | None:
    if sum(p.numel() for p in parameters.values()) > SNAPSHOT_LIMIT:
        return None
    return {name: p.detach().clone() for name, p in parameters.items()}


def _restore(parameters: dict[str, nn.Parameter], snapshot: dict[str, torch.Tensor] | None) -> None:
    if snapshot is not None:
        with torch.no_grad():
            for name, value in snapshot.items():
                parameters[name].copy_(value)


def _autocast(model: nn.Module, config: TrainConfig):
    device = next(model.parameters()).device
    if config.mixed_precision and device.type == "cuda" and next(model.parameters()).dtype == torch.float32:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def count_steps(num_batches: int, config: TrainConfig) -> int:
    per_epoch = max(1, math.ceil(num_batches / config.gradient_accumulation))
    total = max(1, math.ceil(per_epoch * config.epochs))
    return min(total, config.max_steps) if config.max_steps else total


def run_training(
    model: nn.Module,
    make_batches: Callable[[int], list[dict[str, torch.Tensor]]],
    validation_batches: Callable[[], Iterator[dict[str, torch.Tensor]]] | None,
    task: str,
    config: TrainConfig,
    callback: Callback | None = None,
    stop: threading.Event | None = None,
) -> LoopResult:
    """Train the parameters of ``model`` that require grad. ``make_batches(epoch)`` gives one epoch's batches.

    Under ``accelerate launch`` with N processes, each process trains on every N-th batch and DDP
    averages the gradients (see ``distributed.py``); otherwise this is a plain single-process loop.
    """
    parameters = trainable_parameters(model)
    if not parameters:
        raise ValueError("the model has no trainable parameters: attach a method first")
    torch.manual_seed(config.seed)
    runtime = Runtime.detect()
    optimizer = torch.optim.AdamW(parameters.values(), lr=config.learning_rate, weight_decay=config.weight_decay)
    train_model, optimizer = runtime.prepare(model, optimizer)
    epoch_batches = runtime.shard(make_batches(0))
    total_steps = count_steps(len(epoch_batches), config)
    scheduler = get_scheduler(config.scheduler, optimizer, round(config.warmup_ratio * total_steps), total_steps)
    loop = _Loop(train_model, parameters, optimizer, scheduler, config, runtime, callback)
    state = _LoopState(total_steps=total_steps, best=_snapshot(parameters) if config.keep == "best" else None)
    model.train()
    started = time.perf_counter()
    epoch = 0
    while state.step < total_steps and not state.reason:
        if epoch > 0:
            epoch_batches = runtime.shard(make_batches(epoch))
        _run_epoch(loop, epoch_batches, state, stop, lambda: _eval_hook(model, validation_batches, task, loop, state))
        epoch += 1
    seconds = time.perf_counter() - started
    if config.keep == "best" and state.best is not None and state.eval_history:
        _restore(parameters, state.best)
    model.eval()
    return LoopResult(
        train_loss=state.losses,
        eval_history=state.eval_history,
        steps=state.step,
        stopped_reason=state.reason or "completed",
        train_seconds=seconds,
        tokens_per_second=state.tokens / seconds if seconds > 0 else 0.0,
        num_processes=runtime.num_processes,
    )


@dataclass
class _Loop:
    """What every optimizer step uses; ``model`` is the module to call (DDP-wrapped when distributed)."""

    model: nn.Module
    parameters: dict[str, nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: object
    config: TrainConfig
    runtime: Runtime
    callback: Callback | None


def _run_epoch(loop: _Loop, epoch_batches, state: _LoopState, stop, evaluate_now: Callable[[], None]) -> None:
    config = loop.config
    device = next(loop.model.parameters()).device
    for start in range(0, len(epoch_batches), config.gradient_accumulation):
        group = [move(batch, device) for batch in epoch_batches[start : start + config.gradient_accumulation]]
        _optimizer_step(loop, group, state)
        if state.reason or state.step >= state.total_steps:
            return
        if stop is not None and stop.is_set():
            state.reason = "stopped by user"
            return
        if config.eval_every and state.step % config.eval_every == 0:
            evaluate_now()


def _eval_hook(model, validation_batches, task, loop: _Loop, state: _LoopState) -> None:
    if validation_batches:
        _evaluate_during(model, validation_batches, task, state, loop.parameters, loop.callback)


@dataclass
class _LoopState:
    total_steps: int
    best: dict[str, torch.Tensor] | None = None
    best_loss: float = math.inf
    last_good: dict[str, torch.Tensor] | None = None  # parameters that last gave a finite loss
    step: int = 0
    tokens: int = 0
    losses: list[float] = field(default_factory=list)
    eval_history: list[dict] = field(default_factory=list)
    reason: str = ""


def _optimizer_step(loop: _Loop, group, state: _LoopState) -> None:
    """Forward + backward over an accumulation group, then clip and step; rolls back on a non-finite loss."""
    began = time.perf_counter()
    snapshot = _snapshot(loop.parameters)  # these parameters give a finite loss if this step's loss is finite
    loss_sum, tokens = 0.0, 0
    for index, batch in enumerate(group):
        with loop.runtime.no_sync(loop.model, last=index == len(group) - 1):
            with _autocast(loop.model, loop.config):
                loss = loop.model(**batch).loss / len(group)
            loop.runtime.backward(loss)
        loss_sum += loss.item()
        tokens += int(batch["attention_mask"].sum())
    if loop.runtime.num_processes > 1:  # every process sees the same mean loss, so all stop together
        loss_sum, tokens = loop.runtime.sum_across([loss_sum, tokens])
        loss_sum, tokens = loss_sum / loop.runtime.num_processes, int(tokens)
    if not math.isfinite(loss_sum):
        loop.optimizer.zero_grad(set_to_none=True)
        _restore(loop.parameters, state.last_good)
        state.reason = f"non-finite loss at step {state.step + 1}: lower the learning rate"
        return
    state.last_good = snapshot
    loop.runtime.clip_grad_norm(loop.parameters.values(), loop.config.max_grad_norm)
    loop.optimizer.step()
    loop.scheduler.step()
    loop.optimizer.zero_grad(set_to_none=True)
    state.step += 1
    state.tokens += tokens
    state.losses.append(loss_sum)
    if loop.callback:
        seconds = time.perf_counter() - began
        rate = loop.scheduler.get_last_lr()[0]
        loop.callback(StepEvent(state.step, state.total_steps, loss_sum, rate, tokens / seconds if seconds else 0.0))


def _evaluate_during(model, validation_batches, task, state: _LoopState, parameters, callback) -> None:
    metrics = evaluate(model, validation_batches(), task)
    model.train()
    state.eval_history.append({"step": state.step} | metrics)
    if state.best is not None and metrics["loss"] < state.best_loss:
        state.best_loss, state.best = metrics["loss"], _snapshot(parameters)
    if callback:
        callback(EvalEvent(state.step, state.total_steps, metrics))
