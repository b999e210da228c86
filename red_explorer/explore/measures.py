"""Comparing an edited model with its base: next-token divergences and token-weighted losses."""

from __future__ import annotations

import torch
from torch import nn


def log_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """log softmax over the last dimension, in float32 whatever the model's dtype: (..., V)."""
    return logits.float().log_softmax(dim=-1)


def kl_divergence(edited_log_probs: torch.Tensor, base_log_probs: torch.Tensor) -> torch.Tensor:
    """KL(edited ‖ base) = Σ_v p_edited(v) · (log p_edited(v) − log p_base(v)) per position: (..., V) → (...)."""
    divergence = (edited_log_probs.exp() * (edited_log_probs - base_log_probs)).sum(dim=-1)
    return divergence.clamp_min(0.0)  # rounding can make a zero divergence a tiny negative number


def position_mask(batch: dict[str, torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
    """Which positions of ``logits`` (B, T, V) or (B, C) count: real tokens (attention mask), every row."""
    if logits.dim() == 2:  # classification: one distribution per row
        return torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)
    mask = batch.get("attention_mask")
    if mask is None:
        return torch.ones(logits.shape[:2], dtype=torch.bool, device=logits.device)
    return mask.to(logits.device).bool()  # (B, T)


def loss_weight(labels: torch.Tensor, logits: torch.Tensor) -> int:
    """How many targets the model's mean loss averaged over: rows (classification) or shifted label tokens."""
    if logits.dim() == 2:
        return labels.shape[0]
    return int((labels[:, 1:] != -100).sum())


def forward(model: nn.Module, batch: dict[str, torch.Tensor]):
    """One no-grad forward pass of a batch on the model's device."""
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(**{key: value.to(device) for key, value in batch.items()})
