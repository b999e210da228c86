"""Timing for the benchmark: interleaved rounds of variants, medians, and peak memory per variant."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

Workload = Callable[[], object]
VariantFactory = Callable[[], AbstractContextManager[Workload]]  # sets a variant up, yields what to time


@dataclass
class Timings:
    """Seconds of every timed run per variant, peak memory per variant, and variants that could not run."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    per_turn: dict[str, list[float]] = field(default_factory=dict)  # median of each round's turn
    peak_memory_bytes: dict[str, int] = field(default_factory=dict)
    memory_measure: str = ""
    skipped: dict[str, str] = field(default_factory=dict)

    def median(self, name: str) -> float | None:
        values = self.seconds.get(name)
        return statistics.median(values) if values else None

    def ratio(self, name: str, reference: str) -> float | None:
        """Time ratio (> 1 is slower): the median over rounds of name's time / reference's time in that round.

        Pairing each variant with the reference run next to it cancels the slow drift of a shared machine.
        """
        pairs = list(zip(self.per_turn.get(name, []), self.per_turn.get(reference, []), strict=False))
        ratios = [numerator / denominator for numerator, denominator in pairs if denominator > 0]
        return statistics.median(ratios) if ratios else None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(workload: Workload, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    workload()
    synchronize(device)
    return time.perf_counter() - start


class SavedTensorMeter:
    """Counts the bytes autograd saves for backward (the activations), each storage once, parameters excluded."""

    def __init__(self, model: nn.Module) -> None:
        self.excluded = {parameter.untyped_storage().data_ptr() for parameter in model.parameters()}
        self.storages: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer and pointer not in self.excluded:
            self.storages[pointer] = max(self.storages.get(pointer, 0), storage.nbytes())
        return tensor

    @property
    def total(self) -> int:
        return sum(self.storages.values())

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda tensor: tensor)


def estimated_training_bytes(model: nn.Module, activations: int) -> int:
    """Weights + gradients and AdamW's two moments for trainable parameters + saved activations."""
    weights = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return weights + 3 * trainable + activations


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def interleaved(
    variants: dict[str, VariantFactory],
    rounds: int,
    repeats: int,
    warmup: int,
    device: torch.device,
    meter_model: nn.Module | None = None,
    warm_every_turn: bool = True,
) -> Timings:
    """Time every variant ``rounds × repeats`` times, taking turns so that load drift hits all alike.

    Each turn sets the variant up, runs ``warmup`` untimed runs (only in the first round unless
    ``warm_every_turn``: training needs it for AdamW's lazily created state), then the timed runs.

    With ``meter_model`` (training), peak memory is recorded per variant: measured on CUDA
    (max_memory_allocated), estimated elsewhere from the first warm-up run's saved activations.
    """
    timings = Timings(seconds={name: [] for name in variants}, per_turn={name: [] for name in variants})
    timings.memory_measure = "cuda max_memory_allocated" if device.type == "cuda" else "estimate"
    for round_index in range(rounds):
        order = list(variants) if round_index % 2 == 0 else list(reversed(variants))
        for name in order:
            if name in timings.skipped:
                continue
            try:
                turn_warmup = warmup if warm_every_turn or round_index == 0 else 0
                _run_variant(name, variants[name], timings, repeats, turn_warmup, device, meter_model, round_index == 0)
            except (RuntimeError, ValueError) as error:
                if not is_out_of_memory(error):
                    raise
                timings.skipped[name] = "out of memory"
                timings.seconds[name], timings.per_turn[name] = [], []
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return timings


def _run_variant(name, factory, timings: Timings, repeats, warmup, device, meter_model, first_round: bool) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with factory() as workload:
        for index in range(max(warmup, 1 if meter_model is not None and first_round else 0)):
            meter = SavedTensorMeter(meter_model) if meter_model is not None and first_round and index == 0 else None
            with meter.hooks() if meter else nullcontext():
                workload()
            if meter is not None and device.type != "cuda":
                timings.peak_memory_bytes[name] = estimated_training_bytes(meter_model, meter.total)
        turn = [timed(workload, device) for _ in range(repeats)]
        timings.seconds[name] += turn
        timings.per_turn[name].append(statistics.median(turn))
        if device.type == "cuda" and meter_model is not None:
            peak = int(torch.cuda.max_memory_allocated(device))
            timings.peak_memory_bytes[name] = max(peak, timings.peak_memory_bytes.get(name, 0))
