"""Batching tokenised examples: dynamic padding and length-grouped batch order."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from red_explorer.data.formats import TASKS, DataError

IGNORE_INDEX = -100
BATCHES_PER_CHUNK = 50


@dataclass(frozen=True)
class PaddingCollator:
    """Pads a list of examples on the right to the longest one in the batch (rounded up to a multiple of
    ``multiple``: a compiled step sees few shapes).

    input_ids pad with `pad_token_id`, attention_mask and token_type_ids with 0, causal-lm labels with -100;
    classification labels are one int per example.
    """

    pad_token_id: int
    task: str
    multiple: int = 1

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"task must be one of {TASKS}, got {self.task!r}")

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise DataError("cannot collate an empty batch; use a batch size of at least 1")
        longest = -(-max(len(feature["input_ids"]) for feature in features) // self.multiple) * self.multiple
        batch = {
            "input_ids": _pad([f["input_ids"] for f in features], longest, self.pad_token_id),  # (B, T)
            "attention_mask": _pad([f["attention_mask"] for f in features], longest, 0),  # (B, T)
        }
        if "token_type_ids" in features[0]:
            batch["token_type_ids"] = _pad([f["token_type_ids"] for f in features], longest, 0)  # (B, T)
        if self.task == "classification":
            batch["labels"] = torch.tensor([int(f["labels"]) for f in features], dtype=torch.long)  # (B,)
        else:
            batch["labels"] = _pad([f["labels"] for f in features], longest, IGNORE_INDEX)  # (B, T)
        return batch


def _pad(rows: list[Sequence[int]], length: int, value: int) -> torch.Tensor:
    padded = torch.full((len(rows), length), value, dtype=torch.long)  # (B, T)
    for index, row in enumerate(rows):
        values = torch.as_tensor(row, dtype=torch.long)
        padded[index, : len(values)] = values
    return padded


def make_collator(tokenizer: Any, task: str) -> PaddingCollator:
    """A PaddingCollator using the tokenizer's pad token (its eos token when it has none)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise DataError("the tokenizer has neither a pad_token nor an eos_token; set tokenizer.pad_token")
    return PaddingCollator(pad_token_id=int(pad), task=task)


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Batches of indices with similar lengths, so padding is small; deterministic for a seed.

    Indices are shuffled, cut into chunks of ~50 batches, sorted by length (longest first) within each chunk,
    cut into batches, and the batch order is shuffled. Every index appears in exactly one batch.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * BATCHES_PER_CHUNK
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda index: lengths[index], reverse=True)
        batches.extend(part[offset : offset + batch_size] for offset in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches
