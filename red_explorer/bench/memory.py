"""Benchmark of memory: peak training and generation memory per method on a bf16, 8-bit and 4-bit base.

Each precision loads the bench's model afresh (a random-weight model from a saved copy) with bfloat16 compute
and measures, per method, a training step's peak (with AdamW's moments) and one generate call's.
On CUDA the figure is ``torch.cuda.max_memory_allocated`` (after ``reset_peak_memory_stats``) above what was
allocated before the load, so it holds the weights; on CPU, with no allocator statistics, it is the estimate
the training section makes (weights as stored + trainable state + the tensors autograd saved) and, for
generation, the weights + the KV cache the call returned. Beside them stands the memory plan's estimate.
"""

from __future__ import annotations

import gc
import shutil
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from red_explorer.bench.serve import lora_variant, red_variant, tare_variant
from red_explorer.bench.setup import RANDOM_SHAPES, BenchModel, BenchShape, load_bench_model, token_batch
from red_explorer.bench.timing import SavedTensorMeter, estimated_training_bytes, is_out_of_memory
from red_explorer.bench.train import method_variant, train_specs
from red_explorer.engine.memory import stored_bytes
from red_explorer.models.memory_plan import generation_bytes, training_estimate, weight_bytes
from red_explorer.models.model_shape import ShapeUnavailable, model_shape

MEMORY_PRECISIONS = ("bfloat16", "8bit", "4bit")
COMPUTE_DTYPE = "bfloat16"
GENERATION_SETUPS = {
    "base": nullcontext,
    "red_attached": red_variant,
    "lora_attached": lora_variant,
    "tare_attached": tare_variant,
}


def _source(bench: BenchModel, out: Path) -> str:
    """What ``load_bench_model`` loads in each precision: the bench's model, or a saved copy of a random one."""
    if bench.name not in RANDOM_SHAPES:
        return bench.name
    folder = out / "memory-base"
    bench.model.save_pretrained(folder)
    bench.tokenizer.save_pretrained(folder)
    return str(folder)


def _allocated(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    return int(torch.cuda.memory_allocated(device))


def _cuda_peak(device: torch.device, start: int) -> int:
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device)) - start


def _training_peak(loaded: BenchModel, spec, batch, start: int) -> int:
    """One method's training peak: on CUDA over the second of two steps (AdamW's moments exist by then); on CPU
    the estimate from one step's saved tensors (it counts the moments without running a second step)."""
    device = loaded.device
    with method_variant(loaded.model, spec, batch) as step:
        if device.type != "cuda":
            meter = SavedTensorMeter(loaded.model)
            with meter.hooks():
                step()
            return estimated_training_bytes(loaded.model, meter.total)
        step()
        torch.cuda.reset_peak_memory_stats(device)
        step()
        return _cuda_peak(device, start)


def _cache_bytes(output) -> int:
    """Bytes of the KV cache a ``generate(..., return_dict_in_generate=True)`` call returned."""
    cache = getattr(output, "cache", None)
    layers = getattr(cache, "layers", None) or []
    tensors = [tensor for layer in layers for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None))]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors if isinstance(tensor, torch.Tensor))


def _generation_peak(loaded: BenchModel, setup, prompts, new_tokens: int, start: int) -> int:
    """One generate call's peak with the method that ``setup`` attaches (the base itself for ``nullcontext``)."""
    device = loaded.device
    with setup(loaded.model) as model:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with torch.no_grad():
            output = _generate(model, prompts, new_tokens, loaded.tokenizer.pad_token_id or 0)
        if device.type == "cuda":
            return _cuda_peak(device, start)
        return stored_bytes(model) + _cache_bytes(output)


def _generate(model: nn.Module, prompts: dict, new_tokens: int, pad: int):
    return model.generate(
        **prompts,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=pad,
        return_dict_in_generate=True,
    )


def _or_out_of_memory(measure, device: torch.device) -> int | str:
    """``measure()``, or "out of memory" where the method does not fit (full fine-tuning of a large base)."""
    try:
        return measure()
    except (RuntimeError, ValueError) as error:
        if not is_out_of_memory(error):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return "out of memory"


def _estimate(bench: BenchModel, shape: BenchShape, precision: str) -> dict:
    """The memory plan's figures for this base: weights, RED training and generation at the bench's shapes."""
    try:
        planned = model_shape(bench.name)
    except ShapeUnavailable as error:
        return {"skipped": str(error)}
    backend = "bitsandbytes" if bench.device.type == "cuda" else "torchao"
    weights = weight_bytes(planned, precision, COMPUTE_DTYPE, backend)
    dequantized = precision != "bfloat16" and backend == "torchao"
    training = training_estimate(planned, weights, COMPUTE_DTYPE, shape.train_batch, shape.train_length, dequantized)
    length = shape.prompt_length + shape.new_tokens
    return {
        "weights": weights,
        "red_training": training.total,
        "red_training_saved_only": training.total - training.loss_logits,
        "generation": generation_bytes(planned, weights, COMPUTE_DTYPE, shape.generate_batch, length),
    }


def _measured(loaded: BenchModel, shape: BenchShape, start: int) -> dict:
    """Weights, then each method's training and generation peak on the freshly loaded base."""
    device = loaded.device
    batch = token_batch(loaded, shape.train_batch, shape.train_length)
    prompts = token_batch(loaded, shape.generate_batch, shape.prompt_length, seed=1)
    prompts.pop("labels")
    record = {"weights": stored_bytes(loaded.model), "weights_allocated": _allocated(device) - start or None}
    record["training"] = {
        name: _or_out_of_memory(lambda spec=spec: _training_peak(loaded, spec, batch, start), device)
        for name, spec in train_specs(loaded.model).items()
    }
    record["generation"] = {
        name: _or_out_of_memory(
            lambda setup=setup: _generation_peak(loaded, setup, prompts, shape.new_tokens, start), device
        )
        for name, setup in GENERATION_SETUPS.items()
    }
    return record


def _one_precision(bench: BenchModel, shape: BenchShape, source: str, precision: str) -> dict:
    """The base loaded afresh in ``precision`` (bfloat16 compute), measured, and freed again."""
    quantize = None if precision == "bfloat16" else precision
    start = _allocated(bench.device)
    try:
        loaded = load_bench_model(source, device=str(bench.device), dtype=COMPUTE_DTYPE, quantize=quantize)
    except (ValueError, ImportError) as error:  # e.g. no bitsandbytes on this CUDA machine
        return {"skipped": str(error)}
    try:
        record = _measured(loaded, shape, start)
    finally:
        del loaded
        gc.collect()
        if bench.device.type == "cuda":
            torch.cuda.empty_cache()
    return record | {"estimate": _estimate(bench, shape, precision)}


def bench_memory(bench: BenchModel, shape: BenchShape, out: Path) -> dict:
    """Peak memory per method for training and generation, per base precision, beside the plan's estimate."""
    source = _source(bench, out)
    try:
        precisions = {precision: _one_precision(bench, shape, source, precision) for precision in MEMORY_PRECISIONS}
    finally:
        if source != bench.name:
            shutil.rmtree(source, ignore_errors=True)
    measure = (
        "torch.cuda.max_memory_allocated above the allocation before the load"
        if bench.device.type == "cuda"
        else "estimated (no allocator statistics on CPU): weights as stored + trainable state + tensors saved "
        "for backward; generation: weights + the returned KV cache"
    )
    return {
        "measure": measure,
        "compute_dtype": COMPUTE_DTYPE,
        "train": [shape.train_batch, shape.train_length],
        "generate": [shape.generate_batch, shape.prompt_length, shape.new_tokens],
        "precisions": precisions,
    }
