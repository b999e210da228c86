"""Cost per run: trainable parameters, steady-state seconds per step, peak memory, saved size, generation overhead."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from red_explorer.core.method import MergeError
from red_explorer.core.registry import MethodSpec, base_behaviour, save_method
from red_explorer.engine.training import Callback, StepEvent


@dataclass
class CostConfig:
    """How a run's cost is measured."""

    skip_steps: int = 1  # the first optimizer steps pay for set-up (allocation, caches): not steady state
    new_tokens: int = 16  # tokens generated per timing of the generation overhead; 0 = not measured
    prompt_tokens: int = 16  # length of the prompt generation starts from
    repeats: int = 3  # timings per model after one warm-up; the median counts

    def __post_init__(self) -> None:
        if self.skip_steps < 0 or self.new_tokens < 0 or self.prompt_tokens < 1 or self.repeats < 1:
            raise ValueError("skip_steps and new_tokens must be >= 0, prompt_tokens and repeats >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


class StepTimer:
    """A training callback that keeps each optimizer step's seconds (StepEvent.seconds) and passes events on."""

    def __init__(self, forward: Callback | None = None):
        self.forward = forward
        self.seconds: list[float] = []

    def __call__(self, event) -> None:
        if isinstance(event, StepEvent):
            self.seconds.append(event.seconds)
        if self.forward is not None:
            self.forward(event)


def steady_step_seconds(seconds: Sequence[float], skip_steps: int = 1) -> float:
    """Median seconds per step after the first ``skip_steps``; all steps when a run has no more than that."""
    if not seconds:
        raise ValueError("no optimizer step was timed: the run stopped before its first step")
    steady = list(seconds[skip_steps:]) or list(seconds)
    return statistics.median(steady)


def folder_bytes(directory: str | Path) -> int:
    """The total size of every file under ``directory``."""
    return sum(path.stat().st_size for path in Path(directory).rglob("*") if path.is_file())


def saved_bytes(model: nn.Module, spec: MethodSpec, base_name: str | None = None, head_parameter_names=()) -> int:
    """Bytes on disk of the trained method saved in its own format (into a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="red-explorer-size-") as folder:
        save_method(model, spec, folder, base_name, head_parameter_names)
        return folder_bytes(folder)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def _generate_seconds(model: nn.Module, input_ids: torch.Tensor, new_tokens: int, pad_token_id: int) -> float:
    """Seconds to generate exactly ``new_tokens`` tokens greedily after ``input_ids`` (1, T)."""
    device = next(model.parameters()).device
    input_ids = input_ids.to(device)  # (1, T)
    _synchronize(device)
    started = time.perf_counter()
    model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,  # no early end of sequence: every model generates the same count
        do_sample=False,
        pad_token_id=pad_token_id,
    )
    _synchronize(device)
    return time.perf_counter() - started


Timed = nn.Module | tuple[nn.Module, Callable[[], AbstractContextManager]]  # a model, or one inside a context


def time_generations(
    models: dict[str, Timed], input_ids: torch.Tensor, config: CostConfig, pad_token_id: int
) -> dict[str, float]:
    """Median seconds per model to generate ``config.new_tokens`` tokens: one warm-up each, then interleaved.

    A model given as (model, context) is timed inside ``context()``, e.g. with its method switched off.
    """
    entries = {name: entry if isinstance(entry, tuple) else (entry, nullcontext) for name, entry in models.items()}

    def seconds(name: str) -> float:
        model, context = entries[name]
        with context():
            return _generate_seconds(model, input_ids, config.new_tokens, pad_token_id)

    for name in entries:
        seconds(name)  # warm-up
    timings: dict[str, list[float]] = {name: [] for name in entries}
    for _ in range(config.repeats):
        for name in entries:  # interleaved, so drifting machine load hits every model alike
            timings[name].append(seconds(name))
    return {name: statistics.median(values) for name, values in timings.items()}


@dataclass
class GenerationOverhead:
    """Generation time with the method attached, and merged into the weights, over the base model's time."""

    base_seconds: float
    attached_seconds: float
    merged_seconds: float | None  # None: the method does not merge (``merge_note`` says why)
    merge_note: str = ""

    def to_dict(self) -> dict:
        merged = None if self.merged_seconds is None else self.merged_seconds / self.base_seconds
        return {
            "generation_seconds_base": self.base_seconds,
            "generation_overhead_attached": self.attached_seconds / self.base_seconds,
            "generation_overhead_merged": merged,
            "merge_note": self.merge_note,
        }


def generation_overhead(
    trained: nn.Module,
    spec: MethodSpec,
    base: nn.Module | None,
    input_ids: torch.Tensor,
    config: CostConfig,
    pad_token_id: int,
) -> GenerationOverhead:
    """Time the base model, the trained model as attached, and its merged copy where the method merges.

    ``base`` None: the base is ``trained`` itself with its method switched off (a method attached to the base).
    """
    models: dict[str, Timed] = {"base": base if base is not None else (trained, lambda: base_behaviour(trained, spec))}
    models["attached"] = trained
    note = ""
    try:
        models["merged"] = spec.entry.merge_and_unload(trained).to(next(trained.parameters()).device).eval()
    except MergeError as error:
        note = str(error)
    seconds = time_generations(models, input_ids, config, pad_token_id)
    return GenerationOverhead(seconds["base"], seconds["attached"], seconds.get("merged"), note)


def prompt_ids(tokenizer, text: str, length: int) -> torch.Tensor:
    """The first ``length`` token ids of ``text`` as a (1, T) prompt."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"][:length]
    if not ids:
        raise ValueError("the prompt text has no tokens; give a longer text")
    return torch.tensor([ids], dtype=torch.long)  # (1, T)
