"""A merged checkpoint for any method: fold, check against the edited model, write a plain folder."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from red_explorer.core.method import MergeError
from red_explorer.core.registry import merge_and_unload

# largest accepted |Δlogit| between edited and merged model, relative to the largest |logit| (at least 1)
MERGE_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 4e-3}


def verify_merged(model: nn.Module, merged: nn.Module, vocab_size: int | None = None) -> float:
    """Max |Δlogit| between the edited and the merged model on a random probe batch, relative to max |logit|."""
    vocab_size = vocab_size or model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab_size, (2, 12), generator=generator)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids.to(device)).logits.float().cpu()
        actual = merged.to(device)(input_ids=input_ids.to(device)).logits.float().cpu()
    return (expected - actual).abs().max().item() / max(1.0, expected.abs().max().item())


def save_merged(model: nn.Module, directory: str | Path, tokenizer=None) -> Path:
    """Write a standard Hugging Face checkpoint with the edits folded in, after checking it.

    The folder loads with plain ``AutoModelFor*.from_pretrained``, no RED code needed.
    """
    merged = merge_and_unload(model)
    dtype = next(model.parameters()).dtype
    difference = verify_merged(model, merged)
    if not difference <= MERGE_TOLERANCE.get(dtype, 1e-5):
        raise MergeError(
            f"the merged model differs from the edited one (relative |Δlogit| {difference:.1e}); not written"
        )
    directory = Path(directory)
    merged.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory
