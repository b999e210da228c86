"""Benchmark of runs as edits: the memory a kept run holds, and the base + 8 runs in one batched generate call."""

from __future__ import annotations

import gc
import shutil
import statistics
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from red_explorer.bench.serve import random_red_vectors
from red_explorer.bench.setup import BenchModel, BenchShape, corpus_lines
from red_explorer.bench.swap import checkpoint_bytes
from red_explorer.core.red.bank import swap_edits
from red_explorer.core.red.edit import attach_red, detach_red, red_parameter_count
from red_explorer.core.registry import MethodSpec, save_edits
from red_explorer.engine.batched_compare import SavedRun, compare_batched
from red_explorer.engine.experiment import RunResult
from red_explorer.engine.generation import DecodingSettings
from red_explorer.engine.memory import resident_bytes
from red_explorer.engine.training import TrainConfig
from red_explorer.models.loading import LoadedModel
from red_explorer.runs.store import RunStore

STORE_RUNS = 25
COMPARE_RUNS = 8
COMPARE_NEW_TOKENS = 48
COMPARE_ROUNDS = 3
OWNER = "bench"
MIB = 2**20


def live_tensor_bytes() -> int:
    """Bytes of every live torch tensor the garbage collector can reach (parameters included), each storage once."""
    gc.collect()
    storages: dict[int, int] = {}
    with warnings.catch_warnings():  # isinstance on deprecated module attributes warns
        warnings.simplefilter("ignore")
        tensors = [value for value in gc.get_objects() if torch.is_tensor(value)]
    for value in tensors:
        try:
            storage = value.untyped_storage()
            storage.data_ptr()
        except (RuntimeError, NotImplementedError):  # no plain storage (sparse, meta, a quantized weight)
            continue
        if storage.data_ptr():
            storages[storage.data_ptr()] = max(storages.get(storage.data_ptr(), 0), storage.nbytes())
    return sum(storages.values())


def _trained_run(bench: BenchModel, seed: int) -> RunResult:
    """A RED run as training leaves it: the edited model (its vectors set to a non-identity edit) and its record."""
    swap_edits(bench.model, random_red_vectors(bench.model, seed))
    return RunResult(
        spec=MethodSpec("red"),
        train_config=TrainConfig(learning_rate=1e-2, max_steps=30),
        metrics_before={"loss": 3.0},
        metrics_after={"loss": 2.5},
        trainable_parameters=red_parameter_count(bench.model),
        train_seconds=0.0,
        peak_memory_bytes=0,
        tokens_per_second=0.0,
        train_loss=[3.0 - 0.01 * step for step in range(30)],
        eval_history=[],
        stopped_reason="completed",
        model=bench.model,
    )


@contextmanager
def _red_attached(bench: BenchModel) -> Iterator[None]:
    attach_red(bench.model)
    try:
        yield
    finally:
        detach_red(bench.model)


def bench_store_memory(bench: BenchModel, out: Path) -> dict:
    """Memory a session holds per kept RED run: live tensors with 25 runs kept in a RunStore minus with 1.

    Each run is saved the way a session keeps it (its edits on disk, its record in memory) and the
    trained model is dropped; the figure is (bytes with 25 runs - bytes with 1) / 24. Resident
    memory is reported beside it (noisier: the allocator keeps freed pages).
    """
    folder = out / "run_store"
    shutil.rmtree(folder, ignore_errors=True)
    store = RunStore(folder)
    loaded = LoadedModel(bench.model, bench.tokenizer, bench.name, "causal-lm", bench.device, bench.dtype)
    with _red_attached(bench):
        store.save(OWNER, _trained_run(bench, 100), loaded, None)
        session = store.list(OWNER)
        one, resident_one = live_tensor_bytes(), resident_bytes()
        for seed in range(101, 100 + STORE_RUNS):
            store.save(OWNER, _trained_run(bench, seed), loaded, None)
        session = store.list(OWNER)  # what a session holds: the records of its runs
        many, resident_many = live_tensor_bytes(), resident_bytes()
    added = STORE_RUNS - 1
    return {
        "runs": len(session),
        "measure": "bytes of live torch tensors reachable through the garbage collector (each storage once)",
        "live_tensor_bytes_one_run": one,
        "live_tensor_bytes_all_runs": many,
        "per_run_mb": (many - one) / added / MIB,
        "resident_per_run_mb": (resident_many - resident_one) / added / MIB,
        "run_folder_bytes": store.usage_bytes(OWNER) // len(session),
        "model_copy_mb": checkpoint_bytes(bench.model) / MIB,
    }


def _compare_runs(bench: BenchModel, folder: Path) -> list[SavedRun]:
    """Eight RED runs of the same sites (distinct non-identity edits) saved as edits folders."""
    shutil.rmtree(folder, ignore_errors=True)
    runs = []
    with _red_attached(bench):
        for index in range(COMPARE_RUNS):
            swap_edits(bench.model, random_red_vectors(bench.model, 200 + index))
            runs.append(SavedRun(f"run {index}", save_edits(bench.model, folder / f"run{index}", bench.name)))
    return runs


@contextmanager
def _one_thread(device: torch.device) -> Iterator[int]:
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)


def bench_batched_compare(bench: BenchModel, shape: BenchShape, out: Path, quick: bool) -> dict:
    """Base + 8 RED runs as one batched generate call vs the 9 separate calls it replaces (one thread).

    Every row generates exactly ``new_tokens`` tokens; each call is timed after its own warm-up;
    the ratio is the median over rounds of (batched call) / (sum of the 9 separate calls).
    """
    runs = _compare_runs(bench, out / "compare_runs")
    new_tokens = shape.new_tokens if quick else COMPARE_NEW_TOKENS
    settings = DecodingSettings(max_new_tokens=new_tokens)
    prompt = corpus_lines()[0][:120]
    batched_seconds, sequential_seconds = [], []
    with _one_thread(bench.device) as threads:
        for _ in range(shape.rounds if quick else COMPARE_ROUNDS):
            batched = compare_batched(bench.model, bench.tokenizer, [prompt], runs, settings, fixed_length=True)
            sequential = compare_batched(
                bench.model, bench.tokenizer, [prompt], runs, settings, batch=False, fixed_length=True
            )
            batched_seconds.append(sum(call.seconds for call in batched.calls))
            sequential_seconds.append(sum(call.seconds for call in sequential.calls))
    ratios = [one / many for one, many in zip(batched_seconds, sequential_seconds, strict=True)]
    return {
        "runs": COMPARE_RUNS,
        "new_tokens": new_tokens,
        "threads": threads,
        "batched_calls": len(batched.calls),
        "sequential_calls": len(sequential.calls),
        "batched_ms": [seconds * 1e3 for seconds in batched_seconds],
        "sequential_ms": [seconds * 1e3 for seconds in sequential_seconds],
        "ratio": statistics.median(ratios),
        "same_tokens": batched.token_ids == sequential.token_ids,
        "measured": f"batched: {batched.calls[0].measured}. Sequential: the sum of {len(sequential.calls)} such "
        "calls of one row each (the base, then each run attached on its own)",
    }
