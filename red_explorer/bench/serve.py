"""Benchmark of inference: generation with each method attached or merged, and many edits in one batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from red_explorer.bench.setup import BenchModel, BenchShape, token_batch
from red_explorer.bench.timing import Timings, interleaved
from red_explorer.core.red.bank import EditBank, per_row_edits, swap_edits
from red_explorer.core.red.edit import SCALE, attach_red, detach_red, red_vectors
from red_explorer.core.red.merge import merge_red
from red_explorer.core.registry import MethodSpec, apply_method
from red_explorer.core.tare.edit import attach_tare, detach_tare
from red_explorer.models.quantization import is_quantized

GENERATE_VARIANTS = ("base", "red_attached", "red_merged", "lora_attached", "lora_merged", "tare_attached")


def random_red_vectors(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A non-identity edit for every attached RED vector (as a trained one would be)."""
    generator = torch.Generator().manual_seed(seed)
    vectors = {}
    for name, vector in red_vectors(model).items():
        noise = torch.randn(vector.shape, generator=generator) * 0.05
        vectors[name] = (noise + 1 if name.endswith(SCALE) else noise).to(vector.device, vector.dtype)
    return vectors


def randomize_lora(model: nn.Module, seed: int) -> None:
    """Non-zero LoRA B matrices, so the adapter changes the outputs (and merging changes the weights)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                noise = torch.randn(parameter.shape, generator=generator) * 0.01
                parameter.copy_(noise.to(parameter.device, parameter.dtype))


def _generate(model: nn.Module, prompts: dict[str, torch.Tensor], new_tokens: int, pad_token_id: int):
    def run():
        with torch.no_grad():
            return model.generate(
                **prompts,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,  # every variant produces exactly B × new_tokens tokens
                do_sample=False,
                pad_token_id=pad_token_id,
            )

    return run


@contextmanager
def red_variant(model: nn.Module, merged: bool = False, sites: tuple[str, ...] = ("ffn",)) -> Iterator[nn.Module]:
    from red_explorer.core.red.config import RedConfig

    attach_red(model, RedConfig(sites=list(sites)))
    swap_edits(model, random_red_vectors(model, 1))
    if merged:
        merge_red(model)
    try:
        yield model
    finally:
        detach_red(model)


@contextmanager
def lora_variant(model: nn.Module, merged: bool = False) -> Iterator[nn.Module]:
    """LoRA r=8 (PEFT) attached, or merged with ``merge_and_unload`` (then the base weights are restored)."""
    peft_model = apply_method(model, MethodSpec("lora"), "causal-lm")
    randomize_lora(peft_model, 2)
    if not merged:
        try:
            yield peft_model.eval()
        finally:
            peft_model.unload()
        return
    from peft.tuners.lora import LoraLayer

    layers = [module.get_base_layer() for module in peft_model.modules() if isinstance(module, LoraLayer)]
    backup = [(layer, layer.weight.detach().clone()) for layer in layers]
    plain = peft_model.merge_and_unload()
    try:
        yield plain.eval()
    finally:
        with torch.no_grad():
            for layer, weight in backup:
                layer.weight.copy_(weight)


@contextmanager
def tare_variant(model: nn.Module) -> Iterator[nn.Module]:
    attach_tare(model)
    try:
        yield model
    finally:
        detach_tare(model)


@contextmanager
def many_edits_variant(model: nn.Module, count: int, batch: int) -> Iterator[nn.Module]:
    """RED attached, and row b of the batch uses its own edit b mod ``count`` of an EditBank."""
    with red_variant(model) as edited:
        bank = EditBank.from_vectors([random_red_vectors(edited, seed) for seed in range(10, 10 + count)])
        parameter = next(edited.parameters())
        bank = bank.to(parameter.device, parameter.dtype)
        with per_row_edits(edited, bank, torch.arange(batch) % count):
            yield edited


def _wrap(factory, make_workload):
    @contextmanager
    def variant():
        with factory() as model:
            yield make_workload(model)

    return variant


@contextmanager
def _nothing(model: nn.Module) -> Iterator[nn.Module]:
    yield model


def _generation_workload(bench: BenchModel, shape: BenchShape):
    prompts = token_batch(bench, shape.generate_batch, shape.prompt_length, seed=1)
    prompts.pop("labels")
    pad = bench.tokenizer.pad_token_id if bench.tokenizer.pad_token_id is not None else 0
    return lambda edited: _generate(edited, prompts, shape.new_tokens, pad)


def _forward_workload(bench: BenchModel, shape: BenchShape):
    batch = token_batch(bench, shape.generate_batch, shape.train_length, seed=2)
    batch.pop("labels")

    def workload(edited):
        def run():
            with torch.no_grad():
                return edited(**batch).logits

        return run

    return workload


def generation_factories(bench: BenchModel, shape: BenchShape) -> dict:
    model, workload = bench.model, _generation_workload(bench, shape)
    factories = {
        "base": lambda: _nothing(model),
        "red_attached": lambda: red_variant(model),
        "red_merged": lambda: red_variant(model, merged=True),
        "lora_attached": lambda: lora_variant(model),
        "lora_merged": lambda: lora_variant(model, merged=True),
        "tare_attached": lambda: tare_variant(model),
    }
    if is_quantized(model):  # edits do not fold into quantized weights in place (save_merged dequantizes)
        factories = {name: factory for name, factory in factories.items() if not name.endswith("_merged")}
    return {name: _wrap(factory, workload) for name, factory in factories.items()}


def _rows(timings: Timings, names, tokens: int, reference: str) -> dict:
    record = {}
    for name in names:
        median = timings.median(name)
        record[name] = {
            "median_ms": median * 1e3,
            "times_ms": [seconds * 1e3 for seconds in timings.seconds[name]],
            "tokens_per_second": tokens / median,
            f"time_ratio_to_{reference}": timings.ratio(name, reference),
        }
    return record


def _interleaved_generation(factories: dict, bench: BenchModel, shape: BenchShape, reference: str) -> Timings:
    """The generation plan of ``shape`` (rounds × repeats, warm once), each turn right after ``reference``'s."""
    return interleaved(
        factories,
        shape.generate_rounds,
        shape.generate_repeats,
        shape.warmup,
        bench.device,
        warm_every_turn=False,
        reference=reference,
    )


def bench_generation(bench: BenchModel, shape: BenchShape) -> tuple[Timings, dict]:
    """Item 2: greedy generation of B × new_tokens tokens per variant, each turn right after a base turn."""
    factories = generation_factories(bench, shape)
    timings = _interleaved_generation(factories, bench, shape, reference="base")
    return timings, _rows(timings, list(factories), shape.generate_batch * shape.new_tokens, "base")


def bench_many_edits(bench: BenchModel, shape: BenchShape) -> dict:
    """Item 3: one batch whose rows use 8 distinct edits vs the same batch with one shared edit.

    Timed for greedy generation and for one forward pass (scoring a batch), each many-edit turn right
    after a one-edit turn.
    """
    model, record = bench.model, {"distinct_edits": shape.distinct_edits}
    for label, workload in (
        ("generate", _generation_workload(bench, shape)),
        ("forward", _forward_workload(bench, shape)),
    ):
        factories = {
            "one_edit": _wrap(lambda: red_variant(model), workload),
            "many_edits": _wrap(
                lambda: many_edits_variant(model, shape.distinct_edits, shape.generate_batch), workload
            ),
        }
        timings = _interleaved_generation(factories, bench, shape, reference="one_edit")
        record[f"{label}_ratio"] = timings.ratio("many_edits", "one_edit")
        record[label] = {
            name: {"median_ms": timings.median(name) * 1e3, "times_ms": [t * 1e3 for t in timings.seconds[name]]}
            for name in factories
        }
    return record
