"""Quantized base models: which transformers quantization config loads a base in 8 or 4 bits, and undoing it.

RED and the other edit methods change activations, not the base's weights, so they train the same on
a quantized base. On CUDA the weights load through bitsandbytes (8-bit LLM.int8, 4-bit NF4 with double
quantization, as QLoRA does); on CPU through torchao (int8 weight-only; int4 weight-only in groups
of 32, stored one value per byte, so it saves half the memory of int8, not more).
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

QUANTIZE_CHOICES = ("8bit", "4bit")
INT4_GROUP_SIZE = 32  # torchao int4: one scale per this many input features


def check_quantize(quantize: str | None) -> str | None:
    """``quantize`` itself when it names a choice ("8bit", "4bit") or is None/"none"; else a ValueError."""
    if quantize in (None, "", "none"):
        return None
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"unknown quantize {quantize!r}; use None (no quantization), '8bit' or '4bit'.")
    return quantize


def quantization_config(quantize: str | None, device: torch.device, dtype: torch.dtype):
    """The transformers quantization config that loads a base in ``quantize`` bits on ``device``, or None.

    ``dtype`` is the compute dtype: the activations, the edits and every weight that stays unquantized.
    """
    quantize = check_quantize(quantize)
    if quantize is None:
        return None
    if device.type == "cuda":
        return _bitsandbytes_config(quantize, dtype)
    if device.type == "cpu":
        return _torchao_config(quantize)
    raise ValueError(f"quantize={quantize!r} works on CUDA (bitsandbytes) and CPU (torchao), not on {device.type}.")


def _bitsandbytes_config(quantize: str, dtype: torch.dtype):
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(f"quantize={quantize!r} on CUDA needs bitsandbytes: pip install bitsandbytes.")
    from transformers import BitsAndBytesConfig

    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def _torchao_config(quantize: str):
    if importlib.util.find_spec("torchao") is None:
        raise ValueError(f"quantize={quantize!r} on CPU needs torchao: pip install torchao.")
    from torchao.quantization import Int8WeightOnlyConfig, IntxWeightOnlyConfig, PerGroup
    from transformers import TorchAoConfig

    if quantize == "8bit":
        return TorchAoConfig(Int8WeightOnlyConfig())
    return TorchAoConfig(IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(INT4_GROUP_SIZE)))


def base_of(model: nn.Module) -> nn.Module:
    """The transformers model under a PEFT wrapper (or ``model`` itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def is_quantized(model: nn.Module) -> bool:
    """Whether the (possibly PEFT-wrapped) model's base holds quantized weights."""
    return bool(getattr(base_of(model), "is_quantized", False))


def dequantize_base(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Replace ``model``'s quantized weights by their values in ``dtype``, in place: a plain model after.

    The values are the quantized ones (not the original weights), so the plain model computes what the
    quantized one did, up to rounding. bitsandbytes undoes itself (transformers' ``dequantize``); torchao
    weights are tensor subclasses that each know their values.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return model
    if getattr(model, "is_loaded_in_8bit", False) or getattr(model, "is_loaded_in_4bit", False):
        return model.dequantize(dtype=dtype)
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and type(weight.data) is not torch.Tensor:
            module.weight = nn.Parameter(weight.dequantize().to(dtype), requires_grad=False)
    quantizer.remove_quantization_config(model)
    return model
