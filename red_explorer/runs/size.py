"""A run's size on disk before it is trained: what the quota is checked against up front."""

from __future__ import annotations

import torch
from torch import nn

from red_explorer.core.registry import MethodSpec, apply_method

RECORD_BYTES = 2_000  # at least what run.json, metrics.json and the method's config add to its tensors


def human_bytes(count: int) -> str:
    """'1.2 MB': a byte count as people read it (powers of 1000)."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:,} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def tensor_bytes(parameters) -> int:
    return sum(parameter.numel() * parameter.element_size() for parameter in parameters)


def estimated_run_bytes(model: nn.Module, spec: MethodSpec, task: str, head_parameter_names=()) -> int:
    """Bytes a run of ``spec`` on ``model`` keeps: its trainable parameters × their bytes, plus its records.

    Full fine-tuning keeps the whole model. Any other method is attached to ``model``, counted and
    detached again (milliseconds; no step runs), so ``model`` must be the caller's own (a job's
    replica), never a base other sessions are using meanwhile.
    """
    if spec.entry.saves_whole_model:
        return tensor_bytes(model.parameters()) + RECORD_BYTES
    trainable = {name: parameter.requires_grad for name, parameter in model.named_parameters()}
    trained = apply_method(model, spec, task, head_parameter_names)
    try:
        return tensor_bytes(parameter for parameter in trained.parameters() if parameter.requires_grad) + RECORD_BYTES
    finally:
        spec.entry.detach(trained)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                parameter.requires_grad_(trainable.get(name, False))
