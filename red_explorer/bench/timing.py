"""Timing for the benchmark: interleaved rounds of variants, medians, and peak memory per variant."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from red_explorer.engine.memory import stored_bytes

Workload = Callable[[], object]
VariantFactory = Callable[[], AbstractContextManager[Workload]]  # sets a variant up, yields what to time


@dataclass
class Timings:
    """Seconds of every timed run per variant, peak memory per variant, and variants that could not run."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    per_turn: dict[str, list[float]] = field(default_factory=dict)  # median of each turn's timed runs
    reference: str | None = None
    paired: dict[str, list[float]] = field(default_factory=dict)  # turn / the reference turn just before it
    peak_memory_bytes: dict[str, int] = field(default_factory=dict)
    memory_measure: str = ""
    skipped: dict[str, str] = field(default_factory=dict)

    def median(self, name: str) -> float | None:
        values = self.seconds.get(name)
        return statistics.median(values) if values else None

    def ratio(self, name: str, reference: str) -> float | None:
        """Time ratio (> 1 is slower), as the median of paired ratios.

        Against the run's ``reference``, each turn of ``name`` is paired with the reference turn timed
        just before it; between two other variants, turns of the same round are paired. Pairing cancels
        the drift and the bursts of a shared machine far better than a ratio of two medians.
        """
        if name == reference:
            return 1.0 if self.per_turn.get(name) else None
        if reference == self.reference:
            ratios = self.paired.get(name, [])
        else:
            pairs = zip(self.per_turn.get(name, []), self.per_turn.get(reference, []), strict=False)
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


def storage_of(tensor: torch.Tensor) -> torch.UntypedStorage | None:
    """The tensor's storage, or None for a quantized weight (a tensor subclass holds no storage of its own)."""
    try:
        storage = tensor.untyped_storage()
        storage.data_ptr()
    except RuntimeError:
        return None
    return storage


class SavedTensorMeter:
    """Counts the bytes autograd saves for backward (the activations), each storage once, parameters excluded."""

    def __init__(self, model: nn.Module) -> None:
        storages = (storage_of(parameter) for parameter in model.parameters())
        self.excluded = {storage.data_ptr() for storage in storages if storage is not None}
        self.storages: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = storage_of(tensor)  # None: a quantized weight, saved for backward (a parameter, excluded)
        pointer = storage.data_ptr() if storage is not None else 0
        if pointer and pointer not in self.excluded:
            self.storages[pointer] = max(self.storages.get(pointer, 0), storage.nbytes())
        return tensor

    @property
    def total(self) -> int:
        return sum(self.storages.values())

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda tensor: tensor)


def estimated_training_bytes(model: nn.Module, activations: int) -> int:
    """Weights as stored + gradients and AdamW's two moments for trainable parameters + saved activations."""
    weights = stored_bytes(model)
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
    reference: str | None = None,
) -> Timings:
    """Time every variant ``rounds × repeats`` times, taking turns so that load drift hits all alike.

    Each turn sets the variant up, runs ``warmup`` untimed runs (only on a variant's first turn unless
    ``warm_every_turn``: training needs it for AdamW's lazily created state), then the timed runs.
    With a ``reference``, every turn of another variant comes right after a turn of the reference, and
    ``Timings.ratio(name, reference)`` uses those adjacent pairs. The order is reversed every other round.

    With ``meter_model`` (training), peak memory is recorded per variant: measured on CUDA
    (max_memory_allocated), estimated elsewhere from the first warm-up run's saved activations.
    """
    names = [name for name in variants if name != reference]
    timings = Timings({name: [] for name in variants}, {name: [] for name in variants}, reference)
    timings.paired = {name: [] for name in names}
    timings.memory_measure = "cuda max_memory_allocated" if device.type == "cuda" else "estimate"
    turn = _Turns(variants, timings, repeats, warmup, device, meter_model, warm_every_turn)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else list(reversed(names)):
            if reference is not None and turn.run(reference) and turn.run(name):
                timings.paired[name].append(timings.per_turn[name][-1] / timings.per_turn[reference][-1])
            elif reference is None:
                turn.run(name)
    return timings


@dataclass
class _Turns:
    """Runs one turn of a variant at a time; remembers which variants are warm and which ran out of memory."""

    variants: dict[str, VariantFactory]
    timings: Timings
    repeats: int
    warmup: int
    device: torch.device
    meter_model: nn.Module | None
    warm_every_turn: bool
    warmed: set[str] = field(default_factory=set)

    def run(self, name: str) -> bool:
        """One turn of ``name``; False when it is (or just became) skipped."""
        if name in self.timings.skipped:
            return False
        warmup = self.warmup if self.warm_every_turn or name not in self.warmed else 0
        self.warmed.add(name)
        try:
            _run_variant(name, self.variants[name], self.timings, self.repeats, warmup, self.device, self.meter_model)
        except (RuntimeError, ValueError) as error:
            if not is_out_of_memory(error):
                raise
            self.timings.skipped[name] = "out of memory"
            self.timings.seconds[name], self.timings.per_turn[name] = [], []
            self.timings.paired.pop(name, None)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return False
        return True


def _run_variant(name, factory, timings: Timings, repeats, warmup, device, meter_model) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    measure = meter_model is not None and name not in timings.peak_memory_bytes
    with factory() as workload:
        for index in range(max(warmup, 1 if measure else 0)):
            meter = SavedTensorMeter(meter_model) if measure and index == 0 else None
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
