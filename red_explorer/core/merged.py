"""A merged checkpoint for any method: fold, check against the edited model, write a plain folder."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
from torch import nn

from red_explorer.core.method import MergeError
from red_explorer.core.registry import attached_method, merge_and_unload
from red_explorer.models.quantization import base_of, dequantize_base, is_quantized

ROUNDINGS_PER_LAYER = 4  # accepted rounding error of a merge, in units of eps per layer (see merge_tolerance)


def merge_tolerance(dtype: torch.dtype, layers: int) -> float:
    """The largest relative |Δlogit| a correct merge of a ``layers``-layer model in ``dtype`` may show.

    Folding rounds each changed weight once more than the edited model does (by at most eps/2 of it)
    and computes the layer's output in another order (about eps of it). These errors add up layer by
    layer and reach the logits at about eps per layer, relative to the logit scale (the position's
    largest |logit|). Measured on SmolLM2-135M (30 layers) with a trained RED run (pirate demo, scale
    0.78..1.22): 16.5 eps in float32 and 2.4 eps in bfloat16, where a fold that drops one layer's bias
    shows 3.5e5 eps in float32. ``ROUNDINGS_PER_LAYER`` eps per layer leaves room for other models:
    1.4e-5 for SmolLM2 in float32, 0.94 in bfloat16 (whose 8-bit mantissa tells only gross errors apart).
    """
    return ROUNDINGS_PER_LAYER * max(1, layers) * torch.finfo(dtype).eps


def verify_merged(model: nn.Module, merged: nn.Module, vocab_size: int | None = None) -> float:
    """|Δlogit| between the edited and the merged model on a random probe batch, relative to the logit scale.

    Per probe position: the largest |Δlogit| over the vocabulary divided by that position's largest
    |logit|; the median over the 24 positions. The median, because one position can sit on a
    numerically unstable point of the network: in bfloat16, one rounding of SmolLM2's folded weights
    moves one position's logits by 40 while the other 23 move by less than 1.
    """
    vocab_size = vocab_size or model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab_size, (2, 12), generator=generator)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids.to(device)).logits.double().cpu()
        actual = merged.to(device)(input_ids=input_ids.to(device)).logits.double().cpu()
    scale = expected.abs().amax(-1).clamp_min(torch.finfo(torch.float32).tiny)  # (B, T) or (B,)
    return ((expected - actual).abs().amax(-1) / scale).median().item()


def _merge_dequantized(model: nn.Module) -> nn.Module:
    """The edit of a model on a quantized base folded into a plain copy of that base's dequantized weights.

    The edit is saved, taken off a copy, the copy's weights dequantized, and the edit loaded back and
    folded there: folding into quantized weights would round them again (PEFT re-quantizes on merge).
    """
    method = attached_method(model)
    dtype = base_of(model).config.dtype or torch.float32  # the compute dtype the base was loaded in
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    with tempfile.TemporaryDirectory(prefix="red-merge-") as folder:
        method.save(model, Path(folder), None, ())
        plain = dequantize_base(method.detach(copy.deepcopy(model)), dtype)
        edited, _ = method.load(plain, Path(folder))
        return method.merge_and_unload(edited)


def save_merged(model: nn.Module, directory: str | Path, tokenizer=None) -> Path:
    """Write a standard Hugging Face checkpoint with the edits folded in, after checking it.

    The folder loads with plain ``AutoModelFor*.from_pretrained``, no RED code needed. A merge whose
    logits differ from the edited model's by more than ``merge_tolerance`` is refused (MergeError).
    On a quantized base the folder holds the dequantized weights (in the compute dtype) with the edit
    folded in, checked against the edited quantized model, so it computes what that model did.
    """
    merged = _merge_dequantized(model) if is_quantized(model) else merge_and_unload(model)
    dtype = next(merged.parameters()).dtype
    layers = getattr(model.config, "num_hidden_layers", None) or 1
    difference, tolerance = verify_merged(model, merged), merge_tolerance(dtype, layers)
    if not difference <= tolerance:
        raise MergeError(
            f"the merged model differs from the edited one by {difference:.1e} of the logit scale, more than "
            f"the {tolerance:.1e} that rounding in {str(dtype).removeprefix('torch.')} over {layers} layers explains; "
            "not written. The edits still work unmerged: download them and attach them at load time"
        )
    directory = Path(directory)
    merged.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory
