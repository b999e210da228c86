"""Forgetting: a causal LM's mean per-token loss on general text unrelated to the task, method off and on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from red_explorer.core.registry import MethodSpec
from red_explorer.data.batching import make_collator
from red_explorer.data.bundled import SAMPLE_FOLDER
from red_explorer.engine.evaluation import evaluate

GENERAL_TEXT = SAMPLE_FOLDER / "general_text.txt"


def general_paragraphs(path: str | Path | None = None) -> list[str]:
    """The paragraphs (separated by blank lines) of a plain-text file; the bundled general text by default."""
    text = Path(path or GENERAL_TEXT).read_text(encoding="utf-8")
    paragraphs = [" ".join(block.split()) for block in text.split("\n\n")]
    paragraphs = [paragraph for paragraph in paragraphs if paragraph]
    if not paragraphs:
        raise ValueError(f"{path or GENERAL_TEXT} holds no text; give a file of paragraphs separated by blank lines")
    return paragraphs


def general_batches(tokenizer, paragraphs: list[str], max_length: int = 128, batch_size: int = 8) -> list[dict]:
    """Each paragraph as one sequence (the tokenizer's special tokens, cut at ``max_length``), loss on every token.

    labels = input_ids; padding is labelled -100, so a batch's loss covers the paragraphs' own tokens only.
    """
    if max_length < 2 or batch_size < 1:
        raise ValueError("max_length must be >= 2 (one token predicts the next) and batch_size >= 1")
    encoded = tokenizer(paragraphs, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    features = [{"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)} for ids in encoded]
    features.sort(key=lambda feature: len(feature["input_ids"]))  # similar lengths together: little padding
    collate = make_collator(tokenizer, "causal-lm")
    return [collate(features[start : start + batch_size]) for start in range(0, len(features), batch_size)]


def general_loss(model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> float:
    """Mean per-token loss: Σ over every predicted token of −log p(token | prefix), over the number of them."""
    return evaluate(model, batches, "causal-lm")["loss"]


@dataclass
class Forgetting:
    """How much a method's edit raised the loss on general text: forgetting = after − before."""

    general_loss_before: float
    general_loss_after: float

    @property
    def forgetting(self) -> float:
        return self.general_loss_after - self.general_loss_before

    def to_dict(self) -> dict[str, float]:
        return {
            "general_loss_before": self.general_loss_before,
            "general_loss_after": self.general_loss_after,
            "forgetting": self.forgetting,
        }


def measure_forgetting(
    model: nn.Module, spec: MethodSpec, batches: list[dict[str, torch.Tensor]], base: nn.Module | None = None
) -> Forgetting:
    """General-text loss of ``model`` with its method switched off (before) and on (after).

    Off is the method's base behaviour (``registry.base_behaviour``); a method without one (full
    fine-tuning) needs ``base``, the untouched base model, to measure before.
    """
    after = general_loss(model, batches)
    switched_off = _switched_off(model, spec)
    if switched_off is not None:
        with switched_off:
            before = general_loss(model, batches)
    elif base is not None:
        before = general_loss(base, batches)
    else:
        raise ValueError(f"{spec.entry.title} cannot be switched off: pass base=, the untouched base model")
    return Forgetting(before, after)


def _switched_off(model: nn.Module, spec: MethodSpec):
    """The method's base-behaviour context (what ``base_behaviour`` enters), or None where it has none."""
    try:
        return spec.entry.disabled(model)
    except ValueError:
        return None
