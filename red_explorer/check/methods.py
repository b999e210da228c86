"""Checks of one method on one device: a short run lowers the loss; switch-off, detach, reload and merge are exact."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from red_explorer.check.report import CheckReport
from red_explorer.core.method import MergeError
from red_explorer.core.registry import MethodSpec, base_behaviour, load_method, merge_and_unload, save_method
from red_explorer.data.prepared import PreparedData
from red_explorer.engine.experiment import default_train_config, trained_run
from red_explorer.models.loading import LoadedModel
from red_explorer.runs.attach import release

CHECKED_METHODS = ("red", "tare", "lora", "ia3")
# largest accepted |Δlogit| relative to the largest |logit| (at least 1) where two computations may round apart
RELATIVE_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 4e-3}
PROBE_SHAPE = (2, 16)  # (B, T) random token ids, special tokens (ids < 4) left out
BATCH_SIZE = 8


def probe_ids(loaded: LoadedModel) -> torch.Tensor:
    """A fixed (B, T) batch of token ids on the model's device."""
    generator = torch.Generator().manual_seed(0)
    high = min(loaded.model.config.vocab_size, len(loaded.tokenizer))
    return torch.randint(4, high, PROBE_SHAPE, generator=generator).to(loaded.device)


def logits(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """(B, T, V) logits as float32 on the CPU."""
    with torch.no_grad():
        return model(input_ids=input_ids).logits.float().cpu()


def relative_difference(expected: torch.Tensor, actual: torch.Tensor) -> float:
    """max |Δlogit| / max(1, max |logit|)."""
    return (expected - actual).abs().max().item() / max(1.0, expected.abs().max().item())


def exact(expected: torch.Tensor, actual: torch.Tensor) -> tuple[bool, str, str]:
    difference = (expected - actual).abs().max().item()
    return difference == 0, f"max |Δlogit| {difference:.3g}", "0 (bit-exact)"


def within(expected: torch.Tensor, actual: torch.Tensor, dtype: torch.dtype) -> tuple[bool, str, str]:
    difference, tolerance = relative_difference(expected, actual), RELATIVE_TOLERANCE[dtype]
    return difference <= tolerance, f"relative |Δlogit| {difference:.3g}", f"≤ {tolerance:g} ({str(dtype)[6:]})"


def check_method(
    report: CheckReport, loaded: LoadedModel, data: PreparedData, spec: MethodSpec, steps: int, folder: Path
) -> bool:
    """Train ``spec`` for ``steps`` steps on ``loaded`` and check it; True when its run was saved to ``folder``."""
    name, ids = spec.entry.title, probe_ids(loaded)
    base = logits(loaded.model, ids)
    kept: dict[str, torch.Tensor] = {}

    def train() -> tuple[bool, str, str]:
        config = default_train_config(spec, max_steps=steps, batch_size=BATCH_SIZE, seed=0)
        with trained_run(loaded, data, spec, config) as result:
            kept["trained"] = logits(result.model, ids)
            with base_behaviour(result.model, spec):
                kept["off"] = logits(result.model, ids)
            save_method(result.model, spec, folder, loaded.base_name, loaded.head_parameter_names)
        before, after = result.metrics_before["loss"], result.metrics_after["loss"]
        return after < before, f"validation loss {before:.4f} → {after:.4f}", "falls"

    if not report.run(f"{name}: {steps} steps lower the loss", train).passed and "trained" not in kept:
        return False
    report.run(f"{name}: switched off = base", lambda: exact(base, kept["off"]))
    report.run(f"{name}: detached = base", lambda: exact(base, logits(loaded.model, ids)))
    report.run(f"{name}: saved → loaded = trained", lambda: _reloaded(loaded, folder, ids, kept["trained"]))
    report.run(f"{name}: merged = attached", lambda: _merged(loaded, folder, ids))
    return True


def _reloaded(loaded: LoadedModel, folder: Path, ids: torch.Tensor, trained: torch.Tensor) -> tuple[bool, str, str]:
    model, spec = load_method(loaded.model, folder)
    try:
        return within(trained, logits(model, ids), loaded.dtype)
    finally:
        release(model, spec)


def _merged(loaded: LoadedModel, folder: Path, ids: torch.Tensor) -> tuple[bool, str, str]:
    """Merged vs attached (the merge is a new model; the base gets its run taken off again); a refused merge
    (MergeError, it says why) is a correct answer."""
    model, spec = load_method(loaded.model, folder)
    try:
        attached = logits(model, ids)
        try:
            merged = merge_and_unload(model)
        except MergeError as error:
            return True, f"refused: {error}", "exact or refused"
        return within(attached, logits(merged, ids), loaded.dtype)
    finally:
        release(model, spec)
