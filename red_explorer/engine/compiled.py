"""A compiled training step: the model's forward and backward through ``torch.compile``, the edits' hooks traced
into the same graph (RED's scale and bias fuse with the ops around them).

A small model's step on a GPU is bound by kernel launches and Python, not by arithmetic; a compiled graph (with
CUDA graphs in ``reduce-overhead`` mode) removes most of both. Compiling takes tens of seconds once per batch
shape, so a compiled run pads its batches to multiples of ``PAD_MULTIPLE`` tokens: few shapes, each compiled once.
On a CPU the same switch trains the same run (tested), but rarely pays.
"""

from __future__ import annotations

import torch
from torch import nn

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
PAD_MULTIPLE = 64  # tokens: a compiled run's batch lengths are multiples of this


def check_compile_mode(mode: str) -> None:
    """ValueError unless ``mode`` is "" (eager) or one of torch.compile's modes."""
    if mode and mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)} (or empty for eager), got {mode!r}")


def pad_multiple(mode: str) -> int:
    """What a run's batch lengths are rounded up to: PAD_MULTIPLE when compiled, else 1 (no extra padding)."""
    return PAD_MULTIPLE if mode else 1


def compiled_for_training(model: nn.Module, mode: str, num_processes: int = 1) -> nn.Module:
    """``model`` to call in the training loop: compiled in ``mode`` (it shares the model's parameters and hooks),
    or ``model`` itself when ``mode`` is empty."""
    if not mode:
        return model
    check_compile_mode(mode)
    if num_processes > 1:
        raise ValueError(
            "a compiled step runs in one process; under `accelerate launch` leave compile off "
            "(accelerate's own dynamo_backend setting compiles a distributed run)"
        )
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)  # one per length bucket
    return torch.compile(model, mode=mode, dynamic=False)
