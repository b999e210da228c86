"""One training copy of each shared base, lent to one job at a time and handed back as the base: no copy per run."""

from __future__ import annotations

import copy
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


class TrainingReplicas:
    """The training copy of each base model, made once and reused by every training job in turn.

    Training cannot run on the shared base itself: other sessions generate with it meanwhile. A job
    borrows the replica (jobs on the same base wait for each other), removes its method when its run
    is saved, and the replica is reset to the base's weights for the next job. A replica whose
    structure is not the base's any more (a job failed half-way) is dropped and copied afresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[Hashable, nn.Module] = {}
        self._job_locks: dict[Hashable, threading.Lock] = {}

    @contextmanager
    def lend(self, key: Hashable, base: nn.Module, base_lock) -> Iterator[nn.Module]:
        """The replica of ``base`` for one job; kept for the next job only if it can be reset to the base."""
        with self._lock:
            job_lock = self._job_locks.setdefault(key, threading.Lock())
        with job_lock:
            with self._lock:
                model = self._models.pop(key, None)
            if model is None:
                with base_lock:
                    model = copy.deepcopy(base)
            yield model
            with base_lock:  # no other session's edit is attached to the base while it is read
                kept = reset_to(model, base)
            if kept:
                with self._lock:
                    self._models[key] = model

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._models.pop(key, None)


def reset_to(model: nn.Module, base: nn.Module) -> bool:
    """Give ``model`` the base's weights, trainability and mode; False when its parameters are not the base's."""
    ours, theirs = dict(model.named_parameters()), dict(base.named_parameters())
    if ours.keys() != theirs.keys() or model.state_dict().keys() != base.state_dict().keys():
        return False
    with torch.no_grad():
        model.load_state_dict(base.state_dict())
    for name, parameter in ours.items():
        parameter.requires_grad_(theirs[name].requires_grad)
        parameter.grad = None
    model.train(base.training)
    return True
