"""Training on several processes under `accelerate launch` (DDP or FSDP2): detection, sharding, main-process writes.

Without `accelerate launch` (or with one process) nothing here touches accelerate: the loop is the
plain single-process loop. With N processes, every process loads the model and the data, trains on
every N-th batch, DDP averages the gradients of the trainable parameters (RED vectors, LoRA matrices,
TARE editors: all registered nn.Parameters), and only the main process writes the outputs.

With an FSDP2 accelerate config (``distributed_type: FSDP``, ``fsdp_version: 2``) the frozen base and
the trainable parameters are sharded across the processes (each holds 1/N of every wrapped layer);
``shard_model`` wraps the model before the first evaluation, and ``gathered_trainables`` gathers the
full trainable state for the main process to save. accelerate turns FSDP on only for GPU-class
process groups; on a machine without CUDA the same plugin is switched on here and shards over gloo.

On a machine without CUDA the processes run DDP (or FSDP2) over gloo on the CPU. Note: in accelerate 1.15,
``accelerate launch --cpu --num_processes 2`` starts ONE process (multi-CPU launching goes through
mpirun); ``accelerate launch --multi_gpu --num_processes 2`` (torchrun underneath) starts two, and
``Runtime`` puts them on the CPU when there is no GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import cache
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


def is_fsdp() -> bool:
    """True in a process of `accelerate launch` with an FSDP config (several processes)."""
    return is_distributed() and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


@cache
def _accelerator():
    """This process's one Accelerator (FSDP2 prepares the model and later its optimizer on the same one)."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=_on_cpu())
    if accelerator.num_processes != world_size():
        raise RuntimeError(
            f"WORLD_SIZE is {world_size()} but accelerate set up {accelerator.num_processes} process(es): "
            "launch with `accelerate launch --multi_gpu --num_processes N` (or torchrun)"
        )
    if is_fsdp() and _on_cpu():
        _fsdp_on_cpu(accelerator)
    return accelerator


def _fsdp_on_cpu(accelerator) -> None:
    """Switch accelerate's state to FSDP as it does for GPUs (it keeps CPU process groups on DDP).

    FSDP2 shards over gloo on CPU device meshes, so the same plugin, wrapping and state-dict code run.
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()
    if plugin.fsdp_version != 2:
        raise ValueError("on a machine without CUDA only FSDP2 shards: set fsdp_version: 2 in the accelerate config")
    if accelerator.state.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.state.mixed_precision)
    accelerator.state.fsdp_plugin = plugin
    accelerator.state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def shard_model(model: nn.Module) -> nn.Module:
    """Under FSDP, shard ``model`` (the base and the attached method) across the processes; else ``model``.

    Call it after attaching the method (FSDP2 shards the parameters it finds) and before evaluating or
    training; FSDP2 wraps in place, so the returned module is ``model`` itself.
    """
    if not is_fsdp():
        return model
    accelerator = _accelerator()
    if accelerator.state.fsdp_plugin.activation_checkpointing and hasattr(model, "config"):
        model.config.use_cache = False  # a recomputed layer would append its keys and values to the cache twice
    return accelerator.prepare(model)


@contextmanager
def gathered_trainables(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block the main process's ``model`` holds whole trainable parameters, ready to save.

    Under FSDP every process takes part in gathering the full state dict of the trainable parameters
    (the frozen base stays sharded); the sharded parameters are put back afterwards. Elsewhere a no-op.
    """
    if not is_fsdp():
        yield model
        return
    from accelerate.utils.fsdp_utils import fsdp2_canonicalize_names
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    full = get_model_state_dict(model, options=options)  # only the main process receives the tensors
    sharded = {name: p for name, p in model.named_parameters() if p.requires_grad}
    keys = dict(zip(sharded, fsdp2_canonicalize_names(sharded), strict=True))  # without activation-checkpoint wrappers
    if is_main_process():
        _set_parameters(model, {name: nn.Parameter(full[keys[name]].to(p.device)) for name, p in sharded.items()})
    try:
        yield model
    finally:
        if is_main_process():
            _set_parameters(model, sharded)


def _set_parameters(model: nn.Module, parameters: dict[str, nn.Parameter]) -> None:
    for name, parameter in parameters.items():
        owner, _, attribute = name.rpartition(".")
        model.get_submodule(owner)._parameters[attribute] = parameter


@dataclass
class Runtime:
    """How the training loop runs: a plain process (``accelerator`` None) or one of N DDP/FSDP processes."""

    accelerator: Any = None  # accelerate.Accelerator when distributed

    @classmethod
    def detect(cls) -> Runtime:
        return cls(_accelerator()) if is_distributed() else cls()

    @property
    def num_processes(self) -> int:
        return 1 if self.accelerator is None else self.accelerator.num_processes

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        """(model to call, optimizer): DDP-wrapped (FSDP: sharded) and on this process's device when distributed."""
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
