"""Benchmark of training: one step of each method against the floor, and the engine against a raw loop."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from red_explorer.bench.setup import BenchModel, BenchShape, token_batch
from red_explorer.bench.timing import Timings, interleaved
from red_explorer.core.red.edit import attach_red, detach_red
from red_explorer.core.registry import MethodSpec, apply_method
from red_explorer.data.bundled import TRAINING_SAMPLE
from red_explorer.engine.evaluation import move
from red_explorer.models.quantization import is_quantized

TRAIN_VARIANTS = ("floor", "red_ffn", "red_ffn_attn", "lora_r8", "tare", "full")
LEARNING_RATE = 1e-3


def train_step(model: nn.Module, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer | None) -> None:
    """Forward + backward (+ AdamW step): the raw loop every method is measured with."""
    loss = model(**batch).loss
    loss.backward()
    if optimizer is not None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def _require_grad(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    return output.requires_grad_()


@contextmanager
def floor_variant(model: nn.Module, batch) -> Iterator:
    """The base model, frozen, with gradients only to the input embeddings' output: the cheapest backward."""
    handle = model.get_input_embeddings().register_forward_hook(_require_grad)
    model.train()
    try:
        yield lambda: train_step(model, batch, None)
    finally:
        handle.remove()
        model.eval()


@contextmanager
def method_variant(model: nn.Module, spec: MethodSpec, batch) -> Iterator:
    """``spec`` attached to ``model`` for the block, trained by AdamW; the model is the base again after it.

    Full fine-tuning runs AdamW with lr = 0: the same work, and the weights stay the base's for the
    variants that follow.
    """
    trained = apply_method(model, spec, "causal-lm")
    parameters = [parameter for parameter in trained.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=0.0 if spec.entry.saves_whole_model else LEARNING_RATE)
    trained.train()
    try:
        yield lambda: train_step(trained, batch, optimizer)
    finally:
        trained.eval()
        remove_method(model, trained, spec)


def remove_method(model: nn.Module, trained: nn.Module, spec: MethodSpec) -> None:
    """Undo ``apply_method``: detach the method (full fine-tuning has nothing to detach), refreeze."""
    if not spec.entry.saves_whole_model:
        spec.entry.detach(trained)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
        parameter.grad = None


def train_specs(model: nn.Module) -> dict[str, MethodSpec]:
    """The benchmarked methods that can train ``model`` (on a quantized base, full fine-tuning cannot)."""
    specs = {
        "red_ffn": MethodSpec("red"),
        "red_ffn_attn": MethodSpec("red", sites=["ffn", "attn"]),
        "lora_r8": MethodSpec("lora", rank=8, alpha=16),
        "tare": MethodSpec("tare"),
        "full": MethodSpec("full"),
    }
    quantized = is_quantized(model)
    return {name: spec for name, spec in specs.items() if not (quantized and spec.entry.quantized_base_refusal)}


def bench_training_steps(bench: BenchModel, shape: BenchShape) -> tuple[Timings, dict]:
    """Item 1: one training step per method on one batch, as medians; returns timings and a record."""
    batch = token_batch(bench, shape.train_batch, shape.train_length)
    specs = train_specs(bench.model)
    variants = {"floor": lambda: floor_variant(bench.model, batch)}
    variants |= {name: (lambda spec=spec: method_variant(bench.model, spec, batch)) for name, spec in specs.items()}
    timings = interleaved(
        variants, shape.rounds, shape.repeats, shape.warmup, bench.device, bench.model, reference="floor"
    )
    record = {}
    for name in variants:
        median = timings.median(name)
        record[name] = {
            "label": specs[name].label if name in specs else "floor (frozen base, grads to the embeddings' output)",
            "median_ms": None if median is None else median * 1e3,
            "times_ms": [seconds * 1e3 for seconds in timings.seconds[name]],
            "ratio_to_floor": timings.ratio(name, "floor"),
            "peak_memory_bytes": timings.peak_memory_bytes.get(name),
            "trainable_parameters": _trainable_count(bench.model, specs.get(name)),
            "skipped": timings.skipped.get(name),
        }
    return timings, record


def _trainable_count(model: nn.Module, spec: MethodSpec | None) -> int:
    if spec is None:
        return 0
    trained = apply_method(model, spec, "causal-lm")
    count = sum(parameter.numel() for parameter in trained.parameters() if parameter.requires_grad)
    remove_method(model, trained, spec)
    return count


def bench_engine(bench: BenchModel, shape: BenchShape) -> dict:
    """Item 5: tokens/s of the engine's real path (read, tokenise, pad, train with callbacks) vs the raw loop."""
    try:
        from red_explorer.data.prepared import prepare_data
        from red_explorer.data.tables import DataConfig
    except ImportError as error:  # the GPU machines have no `datasets`
        return {"skipped": f"the data layer cannot be imported here ({error})"}
    if not TRAINING_SAMPLE.is_file():
        return {"skipped": f"{TRAINING_SAMPLE} is not installed"}
    data_config = DataConfig(max_length=shape.engine_max_length, max_rows=shape.engine_rows)
    batches = prepare_data(TRAINING_SAMPLE, bench.tokenizer, data_config).train_batches(shape.train_batch, 0)
    tokens = sum(int(batch["attention_mask"].sum()) for batch in batches)
    padded = sum(batch["attention_mask"].numel() for batch in batches)
    runs = {"engine": lambda: _engine_run(bench, data_config, shape), "raw": lambda: _raw_run(bench, batches)}
    seconds = {"engine": [], "raw": []}
    for round_index in range(shape.engine_rounds + 1):  # round 0 warms up (imports, caches, allocator)
        for name in runs if round_index % 2 == 0 else reversed(runs):
            elapsed = runs[name]()
            if round_index > 0:
                seconds[name].append(elapsed)
    engine, raw = statistics.median(seconds["engine"]), statistics.median(seconds["raw"])
    paired = statistics.median([slow / fast for fast, slow in zip(seconds["raw"], seconds["engine"], strict=True)])
    return {
        "data": TRAINING_SAMPLE.name,
        "rows": shape.engine_rows,
        "batches": len(batches),
        "tokens": tokens,
        "padding_efficiency": tokens / padded,
        "engine_seconds": seconds["engine"],
        "raw_seconds": seconds["raw"],
        "engine_tokens_per_second": tokens / engine,
        "raw_tokens_per_second": tokens / raw,
        "engine_over_raw_throughput": 1 / paired,  # median over rounds of raw time / engine time
    }


def _engine_run(bench: BenchModel, data_config, shape: BenchShape) -> float:
    """The path of ``train_method`` without its evaluations: read + tokenise + batch + run_training."""
    from red_explorer.data.prepared import prepare_data
    from red_explorer.engine.training import TrainConfig, run_training

    config = TrainConfig(learning_rate=LEARNING_RATE, epochs=1, batch_size=shape.train_batch, seed=0)
    events = []
    start = time.perf_counter()
    data = prepare_data(TRAINING_SAMPLE, bench.tokenizer, data_config)
    model = apply_method(bench.model, MethodSpec("red"), "causal-lm")
    result = run_training(
        model, lambda epoch: data.train_batches(config.batch_size, epoch), None, "causal-lm", config, events.append
    )
    elapsed = time.perf_counter() - start
    detach_red(bench.model)
    if result.stopped_reason != "completed":
        raise RuntimeError(f"the engine run did not complete: {result.stopped_reason}")
    return elapsed


def _raw_run(bench: BenchModel, batches: list[dict[str, torch.Tensor]]) -> float:
    """The same batches through ``train_step`` with RED attached: no data layer, no engine."""
    attach_red(bench.model)
    parameters = [parameter for parameter in bench.model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE)
    bench.model.train()
    start = time.perf_counter()
    for batch in batches:
        train_step(bench.model, move(batch, bench.device), optimizer)
    if bench.device.type == "cuda":
        torch.cuda.synchronize(bench.device)
    elapsed = time.perf_counter() - start
    bench.model.eval()
    detach_red(bench.model)
    return elapsed
