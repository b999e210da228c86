"""Benchmark of compiled RED: the training step eager and through ``torch.compile`` (the engine's own
``compiled_for_training``; CUDA graphs on a GPU), on the same attached model, batch and optimizer; and greedy
generation with RED attached, eager and with a static KV cache and a compiled forward (``compiled_generation``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from red_explorer.bench.serve import red_variant
from red_explorer.bench.setup import BenchModel, BenchShape, token_batch
from red_explorer.bench.timing import interleaved
from red_explorer.bench.train import LEARNING_RATE, train_step
from red_explorer.core.red.edit import attach_red, detach_red
from red_explorer.engine.compiled import compiled_for_training
from red_explorer.engine.compiled_generation import check_compilable, compiled_generation


def compile_mode(device: torch.device) -> str:
    """CUDA graphs on a GPU (the small model's step is launch-bound); plain compilation elsewhere."""
    return "reduce-overhead" if device.type == "cuda" else "default"


def bench_compiled_step(bench: BenchModel, shape: BenchShape, floor_ms: float | None) -> dict:
    """RED's step eager vs compiled, paired turn by turn; compiling is timed apart (the first compiled call).

    ``floor_ms``: the training section's floor median, to set the compiled step beside (not paired).
    """
    batch = token_batch(bench, shape.train_batch, shape.train_length)
    mode = compile_mode(bench.device)
    model = bench.model
    attach_red(model)
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE)
    compiled = compiled_for_training(model, mode)
    model.train()
    try:
        eager_loss = model(**batch).loss.item()  # at the parameters the first compiled step starts from
        began = time.perf_counter()
        compiled_loss = _first_compiled_step(compiled, batch, optimizer)  # compiles forward and backward
        if bench.device.type == "cuda":
            torch.cuda.synchronize(bench.device)
        compile_seconds = time.perf_counter() - began
        runs = (lambda: train_step(model, batch, optimizer), lambda: train_step(compiled, batch, optimizer))
        timings = _eager_against_compiled(*runs, shape.rounds, shape.repeats, shape.warmup, bench.device)
    finally:
        model.eval()
        detach_red(bench.model)
    eager, fast = timings.median("red_eager"), timings.median("red_compiled")
    return {
        "mode": mode,
        "compile_seconds": compile_seconds,
        "first_loss_eager": eager_loss,
        "first_loss_compiled": compiled_loss,  # the same batch at the same parameters: equal up to the dtype
        "red_eager_ms": eager * 1e3,
        "red_compiled_ms": fast * 1e3,
        "compiled_over_eager": timings.ratio("red_compiled", "red_eager"),  # paired; < 1 is faster
        "floor_ms": floor_ms,
        "compiled_over_floor": None if floor_ms is None else fast * 1e3 / floor_ms,  # medians of two sections
    }


def _first_compiled_step(compiled, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> float:
    """``train_step`` through the compiled model, returning its loss (the step that compiles)."""
    optimizer.zero_grad(set_to_none=True)
    loss = compiled(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def _generate(model, prompts: dict[str, torch.Tensor], new_tokens: int, pad: int, mode: str):
    """A call generating exactly ``new_tokens`` greedy tokens per row, compiled in ``mode`` ("" eager)."""

    def run() -> torch.Tensor:
        with torch.no_grad(), compiled_generation(model, mode) as compiled:
            return model.generate(
                **prompts,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=pad,
                **compiled,
            )

    return run


def bench_compiled_generation(bench: BenchModel, shape: BenchShape) -> dict:
    """RED-attached greedy generation eager vs compiled, paired turn by turn; compiling is timed apart."""
    try:
        check_compilable(bench.model)
    except ValueError as error:  # e.g. a bitsandbytes base
        return {"skipped": str(error), "compiled_over_eager": None}
    prompts = token_batch(bench, shape.generate_batch, shape.prompt_length, seed=1)
    prompts.pop("labels")
    pad = bench.tokenizer.pad_token_id if bench.tokenizer.pad_token_id is not None else 0
    mode = compile_mode(bench.device)
    with red_variant(bench.model) as model:
        eager = _generate(model, prompts, shape.new_tokens, pad, "")
        compiled = _generate(model, prompts, shape.new_tokens, pad, mode)
        began = time.perf_counter()
        compiled_tokens = compiled()  # compiles the decoding step
        if bench.device.type == "cuda":
            torch.cuda.synchronize(bench.device)
        compile_seconds = time.perf_counter() - began
        same_tokens = torch.equal(compiled_tokens, eager())
        rounds = (shape.generate_rounds, shape.generate_repeats, shape.warmup)
        timings = _eager_against_compiled(eager, compiled, *rounds, bench.device)
    tokens = shape.generate_batch * shape.new_tokens
    slow, fast = timings.median("red_eager"), timings.median("red_compiled")
    return {
        "mode": mode,
        "compile_seconds": compile_seconds,
        "same_tokens": same_tokens,  # greedy tokens of the two, compared once
        "red_eager_ms": slow * 1e3,
        "red_compiled_ms": fast * 1e3,
        "red_eager_tokens_per_second": tokens / slow,
        "red_compiled_tokens_per_second": tokens / fast,
        "compiled_over_eager": timings.ratio("red_compiled", "red_eager"),  # paired; < 1 is faster
    }


def _eager_against_compiled(eager, compiled, rounds: int, repeats: int, warmup: int, device: torch.device):
    """Timings of the two calls, each compiled turn paired with the eager turn just before it (warm once)."""

    @contextmanager
    def variant(run) -> Iterator:
        yield run

    return interleaved(
        {"red_eager": lambda: variant(eager), "red_compiled": lambda: variant(compiled)},
        rounds,
        repeats,
        warmup,
        device,
        reference="red_eager",
        warm_every_turn=False,
    )
