"""The one training loop every method goes through, reporting through callbacks and stoppable."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial

import torch
from torch import nn
from transformers import get_scheduler

from red_explorer.data.batching import IGNORE_INDEX
from red_explorer.engine.compiled import check_compile_mode, compiled_for_training
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
    decay_toward_start: bool = field(
        default=False,
        metadata={"help": "weight decay pulls toward the starting values (RED: scale = 1 + s, s decayed) not 0"},
    )
    lr_factors: dict[str, float] = field(
        default_factory=dict, metadata={"help": "name suffix -> learning-rate multiplier, e.g. red_scale: 0.3"}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the gradient norm to this; 0 = no clipping"})
    compile: str = field(
        default="", metadata={"help": "torch.compile mode of the training step (see engine.compiled); '' = eager"}
    )
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
        if not (0 <= self.warmup_ratio < 1 and self.weight_decay >= 0 and self.max_grad_norm >= 0):
            raise ValueError("warmup_ratio must be in [0, 1), weight_decay and max_grad_norm >= 0 (0: no clipping)")
        if not all(isinstance(key, str) and key and factor > 0 for key, factor in self.lr_factors.items()):
            raise ValueError(f"lr_factors maps parameter-name suffixes to positive multipliers, got {self.lr_factors}")
        check_compile_mode(self.compile)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepEvent:
    step: int
    total_steps: int
    loss: float
    learning_rate: float
    tokens_per_second: float
    seconds: float = 0.0  # wall time of this optimizer step (forward, backward, update)


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


def epochs_for(epochs: float, max_steps: int | None) -> float:
    """Max steps, when given, is the run's length: the data repeats for as many epochs as it takes (each epoch
    is at least one step, so ``max_steps`` epochs always suffice); without it, ``epochs`` counts."""
    return max(epochs, float(max_steps)) if max_steps else epochs


def count_steps(num_batches: int, config: TrainConfig) -> int:
    per_epoch = max(1, math.ceil(num_batches / config.gradient_accumulation))
    total = max(1, math.ceil(per_epoch * config.epochs))
    return min(total, config.max_steps) if config.max_steps else total


def parameter_groups(parameters: dict[str, nn.Parameter], config: TrainConfig) -> list[dict]:
    """AdamW groups: one per learning-rate factor (``lr_factors``: the first name suffix that matches).

    Weight decay is AdamW's (toward 0) unless ``decay_toward_start``: then the loop applies it toward each
    parameter's starting value, and AdamW's own is 0.
    """
    decay = 0.0 if config.decay_toward_start else config.weight_decay
    groups: dict[float, list[nn.Parameter]] = {}
    for name, parameter in parameters.items():
        factor = next((f for suffix, f in config.lr_factors.items() if name.endswith(suffix)), 1.0)
        groups.setdefault(factor, []).append(parameter)
    unused = [suffix for suffix in config.lr_factors if not any(name.endswith(suffix) for name in parameters)]
    if unused:
        raise ValueError(f"lr_factors {unused} match no trainable parameter (names end like {next(iter(parameters))})")
    return [
        {"params": group, "lr": config.learning_rate * factor, "weight_decay": decay, "lr_factor": factor}
        for factor, group in groups.items()
    ]


def _decay_toward(optimizer, parameters: dict[str, nn.Parameter], start: dict[str, torch.Tensor], decay: float):
    """Decoupled weight decay toward the start, p -= lr · decay · (p − p0): AdamW's decay of s for p = p0 + s."""
    origin = {id(parameters[name]): value for name, value in start.items()}
    with torch.no_grad():
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                parameter.sub_(parameter - origin[id(parameter)], alpha=group["lr"] * decay)


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
    optimizer = torch.optim.AdamW(parameter_groups(parameters, config), lr=config.learning_rate)
    train_model, optimizer = runtime.prepare(model, optimizer)
    train_model = compiled_for_training(train_model, config.compile, runtime.num_processes)
    parameters = trainable_parameters(model)  # FSDP2 replaces them by sharded ones (DDP keeps them)
    epoch_batches = runtime.shard(make_batches(0))
    total_steps = count_steps(len(epoch_batches), config)
    scheduler = get_scheduler(config.scheduler, optimizer, round(config.warmup_ratio * total_steps), total_steps)
    start = None
    if config.decay_toward_start and config.weight_decay:  # what the decay pulls toward, whatever the size
        start = {name: parameter.detach().clone() for name, parameter in parameters.items()}
    loop = _Loop(train_model, parameters, optimizer, scheduler, config, runtime, callback, task, start)
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
    task: str = "causal-lm"
    start: dict[str, torch.Tensor] | None = None  # what weight decay pulls toward (decay_toward_start)


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


def target_count(batch: dict[str, torch.Tensor], task: str) -> int:
    """How many targets a batch's mean loss averages over: shifted non-ignored tokens, or rows (classification)."""
    labels = batch["labels"]
    if task == "classification":
        return labels.shape[0]
    return int((labels[:, 1:] != IGNORE_INDEX).sum())  # position t predicts token t + 1


def accumulate_gradients(
    model: nn.Module, group: list[dict[str, torch.Tensor]], task: str, runtime: Runtime, precision=nullcontext
) -> tuple[float, int]:
    """Backward over an accumulation group exactly as over one batch of all its rows (on every process).

    loss = Σ_micro-batches Σ_targets ℓ / N, with N the targets of the whole group on all processes: each
    micro-batch's mean loss ℓ̄_i counts n_i / N, not 1 / (number of micro-batches). DDP averages gradients
    over P processes, so each process scales by P. Returns (the group's mean loss per target, N).
    """
    counts = [target_count(batch, task) for batch in group]
    total = int(runtime.sum_across([sum(counts)])[0]) if runtime.num_processes > 1 else sum(counts)
    weight = runtime.num_processes / max(total, 1)
    summed = 0.0  # Σ per-target losses of this process's group
    for index, (batch, count) in enumerate(zip(group, counts, strict=True)):
        with runtime.no_sync(model, last=index == len(group) - 1):
            with precision():
                output = model(**batch)
                # n_i · mean = the sum of its per-target losses; no targets: a zero that keeps the graph (DDP)
                loss_sum = output.loss * count if count else output.logits.sum() * 0.0
            runtime.backward(loss_sum * weight)
        summed += loss_sum.item()
    if runtime.num_processes > 1:  # every process reports the same mean, so all stop together
        summed = runtime.sum_across([summed])[0]
    return summed / max(total, 1), total


def _optimizer_step(loop: _Loop, group, state: _LoopState) -> None:
    """Forward + backward over an accumulation group, then clip and step; rolls back on a non-finite loss."""
    began = time.perf_counter()
    snapshot = _snapshot(loop.parameters)  # these parameters give a finite loss if this step's loss is finite
    precision = partial(_autocast, loop.model, loop.config)
    loss_sum, _ = accumulate_gradients(loop.model, group, loop.task, loop.runtime, precision)
    tokens = sum(int(batch["attention_mask"].sum()) for batch in group)
    if loop.runtime.num_processes > 1:
        tokens = int(loop.runtime.sum_across([tokens])[0])
    if not math.isfinite(loss_sum):
        loop.optimizer.zero_grad(set_to_none=True)
        _restore(loop.parameters, state.last_good)
        state.reason = f"non-finite loss at step {state.step + 1}: lower the learning rate"
        return
    state.last_good = snapshot
    if loop.config.max_grad_norm:
        loop.runtime.clip_grad_norm(loop.parameters.values(), loop.config.max_grad_norm)
    if loop.start is not None:
        _decay_toward(loop.optimizer, loop.parameters, loop.start, loop.config.weight_decay)
    loop.optimizer.step()
    loop.scheduler.step()
    loop.optimizer.zero_grad(set_to_none=True)
    state.step += 1
    state.tokens += tokens
    state.losses.append(loss_sum)
    if loop.callback:
        seconds = time.perf_counter() - began
        rate = loop.scheduler.get_last_lr()[0]
        loop.callback(
            StepEvent(state.step, state.total_steps, loss_sum, rate, tokens / seconds if seconds else 0.0, seconds)
        )


def _evaluate_during(model, validation_batches, task, state: _LoopState, parameters, callback) -> None:
    metrics = evaluate(model, validation_batches(), task)
    model.train()
    state.eval_history.append({"step": state.step} | metrics)
    if state.best is not None and metrics["loss"] < state.best_loss:
        state.best_loss, state.best = metrics["loss"], _snapshot(parameters)
    if callback:
        callback(EvalEvent(state.step, state.total_steps, metrics))
