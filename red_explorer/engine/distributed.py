"""Training on several processes under `accelerate launch` (DDP): detection, sharding, main-process writes.

Without `accelerate launch` (or with one process) nothing here touches accelerate: the loop is the
plain single-process loop. With N processes, every process loads the model and the data, trains on
every N-th batch, DDP averages the gradients of the trainable parameters (RED vectors, LoRA matrices,
TARE editors: all registered nn.Parameters), and only the main process writes the outputs.

On a machine without CUDA the processes run DDP over gloo on the CPU. Note: in accelerate 1.15,
``accelerate launch --cpu --num_processes 2`` starts ONE process (multi-CPU launching goes through
mpirun); ``accelerate launch --multi_gpu --num_processes 2`` (torchrun underneath) starts two, and
``Runtime`` puts them on the CPU when there is no GPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def world_size() -> int:
    """How many processes `accelerate launch` (or torchrun) started; 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return world_size() > 1


def bind_local_device() -> None:
    """Make "cuda" mean this process's GPU (cuda:LOCAL_RANK), so each process loads onto its own GPU.

    Called when this module is imported (the CLI imports it before loading the model); a no-op
    without a launcher or without CUDA.
    """
    if is_distributed() and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))


bind_local_device()


def _on_cpu() -> bool:
    return not torch.cuda.is_available()


def _state():
    from accelerate import PartialState

    return PartialState(cpu=_on_cpu())


def is_main_process() -> bool:
    """True in a plain process and in the main process of a distributed run."""
    return _state().is_main_process if is_distributed() else True


def wait_for_everyone() -> None:
    """A barrier across processes (a no-op in a plain process)."""
    if is_distributed():
        _state().wait_for_everyone()


@dataclass
class Runtime:
    """How the training loop runs: a plain process (``accelerator`` None) or one of N DDP processes."""

    accelerator: Any = None  # accelerate.Accelerator when distributed

    @classmethod
    def detect(cls) -> Runtime:
        if not is_distributed():
            return cls()
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=_on_cpu())
        if accelerator.num_processes != world_size():
            raise RuntimeError(
                f"WORLD_SIZE is {world_size()} but accelerate set up {accelerator.num_processes} process(es): "
                "launch with `accelerate launch --multi_gpu --num_processes N` (or torchrun)"
            )
        return cls(accelerator)

    @property
    def num_processes(self) -> int:
        return 1 if self.accelerator is None else self.accelerator.num_processes

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        """(model to call, optimizer): DDP-wrapped and on this process's device when distributed."""
        if self.accelerator is None:
            return model, optimizer
        return self.accelerator.prepare(model, optimizer)

    def shard(self, batches: Sequence) -> list:
        """This process's batches: every N-th one, the same count on every process (DDP needs it)."""
        if self.accelerator is None:
            return list(batches)
        count, index = self.num_processes, self.accelerator.process_index
        per_process = len(batches) // count
        if per_process == 0:
            raise ValueError(f"{len(batches)} batches cannot feed {count} processes: add data or lower batch_size")
        return list(batches[index::count][:per_process])

    def backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is None:
            loss.backward()
        else:
            self.accelerator.backward(loss)

    def no_sync(self, model: nn.Module, last: bool):
        """Skip DDP's gradient all-reduce on all but the last micro-batch of an accumulation group."""
        if self.accelerator is None or last:
            return nullcontext()
        return self.accelerator.no_sync(model)

    def clip_grad_norm(self, parameters, max_norm: float) -> torch.Tensor:
        if self.accelerator is None:
            return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        return self.accelerator.clip_grad_norm_(parameters, max_norm)

    def sum_across(self, values: list[float]) -> list[float]:
        """Each value summed over the processes (unchanged in a plain process)."""
        if self.accelerator is None:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(tensor, reduction="sum").tolist()
