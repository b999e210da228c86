"""Memory of a model and of a run: its weights as stored, the CUDA allocator's peak, or on CPU the resident peak."""

from __future__ import annotations

import os
import threading

import torch
from torch import nn
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

SAMPLE_SECONDS = 0.02


def resident_bytes() -> int:
    """This process's resident memory now (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor holds, quantized ones included: a torchao weight's values, scales and zero points;
    a bitsandbytes weight's packed values with its per-row scales (8 bits) or its block absmax (4 bits)."""
    if is_traceable_wrapper_subclass(tensor):
        return sum(tensor_bytes(inner) for inner in vars(tensor).values() if isinstance(inner, torch.Tensor))
    held = tensor.numel() * tensor.element_size()
    scales = getattr(tensor, "SCB", None)
    state = getattr(tensor, "quant_state", None)
    extras = [scales, getattr(state, "absmax", None), getattr(getattr(state, "state2", None), "absmax", None)]
    return held + sum(extra.numel() * extra.element_size() for extra in extras if isinstance(extra, torch.Tensor))


def stored_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters as stored (a tied weight once)."""
    return sum(tensor_bytes(parameter) for parameter in model.parameters())


class PeakMemory:
    """``with PeakMemory(device) as meter: ...``; then ``meter.peak_bytes`` is what the block added at its peak.

    CUDA: ``max_memory_allocated`` over the block minus the allocation at its start. CPU: resident
    memory sampled every 20 ms, peak minus start (other threads of the process count too).
    """

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.peak_bytes = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._peak = resident_bytes()
            self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._peak = max(self._peak, resident_bytes())

    def __exit__(self, *error) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = max(0, torch.cuda.max_memory_allocated(self.device) - self._start)
            return
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, resident_bytes())
        self.peak_bytes = max(0, self._peak - self._start)
