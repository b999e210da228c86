"""Which token positions LoReFT edits in one forward pass: the first p and last s tokens of each row's prompt."""

from __future__ import annotations

import torch

IGNORE_INDEX = -100  # the label the loss skips (the data pipeline puts it on prompt and padding tokens)


def prompt_mask(attention_mask: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T) bool: the prompt tokens of each row.

    With per-token labels (B, T), the prompt is the leading real tokens whose label is IGNORE_INDEX (the
    masked instruction before the response); a row whose first real token is already labelled (plain
    text) counts whole. Without them (generation, classification labels (B,)) every real token is prompt.
    """
    real = attention_mask.bool()  # (B, T)
    if labels is None or labels.shape != attention_mask.shape:
        return real
    answered = real & (labels != IGNORE_INDEX)  # (B, T)
    prompt = real & (answered.long().cumsum(-1) == 0)  # real tokens before the first labelled one
    return torch.where(prompt.any(-1, keepdim=True), prompt, real)


def edited_positions(prompt: torch.Tensor, first: int, last: int) -> torch.Tensor:
    """(B, T) bool: the first ``first`` and last ``last`` prompt tokens of each row (their union when they overlap).

    Works for left and right padding: tokens are counted along the prompt mask, not by index.
    """
    rank = prompt.long().cumsum(-1)  # (B, T): 1, 2, ..., L along each row's prompt tokens
    length = rank[:, -1:]  # (B, 1): L, the prompt length
    return prompt & ((rank <= first) | (rank > length - last))


def is_decoding_step(kwargs: dict) -> bool:
    """A forward that continues a cache (a generation step after the prompt): it edits nothing."""
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    if cache is None:
        return False
    if hasattr(cache, "get_seq_length"):
        return cache.get_seq_length() > 0
    return len(cache) > 0  # a legacy tuple of per-layer (key, value)


def forward_positions(args: tuple, kwargs: dict, first: int, last: int) -> tuple[tuple, tuple[int, int]] | None:
    """((row indices, column indices), (B, T)): the positions a model forward edits; None for a decoding step.

    Read from the forward's own inputs: ``input_ids`` (or ``inputs_embeds``) for the shape, the 2-D
    ``attention_mask`` for padding (none: every token is real) and per-token ``labels`` for the prompt.
    """
    if is_decoding_step(kwargs):
        return None
    reference = kwargs.get("input_ids", args[0] if args else None)
    if reference is None:
        reference = kwargs.get("inputs_embeds")
    if reference is None:
        raise ValueError("LoReFT needs input_ids or inputs_embeds in the forward call to place its positions")
    batch, length = reference.shape[:2]
    mask = kwargs.get("attention_mask")
    if mask is None or mask.dim() != 2 or tuple(mask.shape) != (batch, length):
        mask = torch.ones(batch, length, dtype=torch.bool, device=reference.device)
    chosen = edited_positions(prompt_mask(mask, kwargs.get("labels")), first, last)  # (B, T)
    return chosen.nonzero(as_tuple=True), (batch, length)
