"""Validation metrics: loss and perplexity for causal LMs; accuracy, F1 and MCC for classification."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def move(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], task: str) -> dict[str, float]:
    """Token-weighted mean loss (+ perplexity), or loss + accuracy/F1/MCC for classification."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, total_weight, predictions, labels = 0.0, 0, [], []
    for batch in batches:
        batch = move(batch, device)
        output = model(**batch)
        weight = _loss_weight(batch["labels"], task)
        total_loss += output.loss.float().item() * weight
        total_weight += weight
        if task == "classification":
            predictions.append(output.logits.argmax(-1).cpu())
            labels.append(batch["labels"].cpu())
    model.train(was_training)
    if total_weight == 0:
        raise ValueError("the validation set has no tokens to score; add validation rows")
    loss = total_loss / total_weight
    if task == "classification":
        return {"loss": loss} | classification_metrics(torch.cat(predictions), torch.cat(labels))
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}


def _loss_weight(labels: torch.Tensor, task: str) -> int:
    """How many targets the model's mean loss averaged over (shifted tokens for causal LMs)."""
    if task == "classification":
        return labels.shape[0]
    return int((labels[:, 1:] != -100).sum())


def classification_metrics(predictions: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    from sklearn.metrics import f1_score, matthews_corrcoef

    predicted, expected = predictions.numpy(), labels.numpy()
    return {
        "accuracy": float((predicted == expected).mean()),
        "f1": float(f1_score(expected, predicted, average="macro", zero_division=0)),
        "mcc": float(matthews_corrcoef(expected, predicted)),
    }
