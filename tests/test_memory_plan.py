"""The memory plan: a model's shape from its config alone, bytes per precision, and the fits verdict."""

import pytest
import torch
from tiny_models import save_tiny_causal_lm

from red_explorer.bench.setup import RANDOM_SHAPES, random_model
from red_explorer.bench.timing import SavedTensorMeter
from red_explorer.bench.train import train_step
from red_explorer.core.registry import MethodSpec, apply_method
from red_explorer.engine.memory import stored_bytes
from red_explorer.models.loading import load_model
from red_explorer.models.memory_plan import (
    available_memory,
    plan_markdown,
    plan_memory,
    saved_bytes_per_token,
    training_estimate,
    weight_bytes,
)
from red_explorer.models.model_shape import ShapeUnavailable, model_shape

TINY = RANDOM_SHAPES["tiny"]  # vocab 512, hidden 64, FFN 128, 2 layers, 4 heads of 16, 2 key/value heads, tied


def test_the_tiny_shape_and_its_training_estimate_equal_a_hand_computation():
    shape = model_shape("tiny")
    vocab, hidden, ffn, layers = 512, 64, 128, 2
    queries, keys = 4 * 16, 2 * 16
    linear = layers * (hidden * queries + 2 * hidden * keys + queries * hidden + 3 * hidden * ffn)
    other = vocab * hidden + layers * 2 * hidden + hidden  # tied embedding, two norms a layer, the final norm
    assert (shape.linear_weights, shape.other_parameters) == (linear, other) == (73_728, 33_088)
    assert shape.total_parameters == sum(
        p.numel() for p in random_model("tiny", torch.device("cpu"), torch.float32).parameters()
    )
    assert weight_bytes(shape, "float32") == 4 * 106_816
    # bfloat16, 4 rows of 32 tokens: per layer gate/up/act, q + attention output, k + v, RED input (2 bytes each),
    # two float32 norm inputs, a float32 log-sum-exp per head and two reciprocal scales
    layer = 2 * (3 * ffn + 2 * queries + 2 * keys + hidden) + 2 * 4 * hidden + 4 * 4 + 8
    per_token = (layers - 1) * layer + 2 * hidden + 4 * hidden + 4 * vocab
    assert saved_bytes_per_token(shape, 2) == per_token == 4_248
    estimate = training_estimate(shape, 2 * 106_816, "bfloat16", batch_size=4, max_length=32)
    assert estimate.red_state == 16 * 2 * layers * hidden  # float32 vectors, gradients, two AdamW moments
    assert estimate.activations == 128 * per_token and estimate.loss_logits == 128 * vocab * (2 + 8)
    assert estimate.total == 2 * 106_816 + 4_096 + 543_744 + 655_360
    on_torchao = training_estimate(shape, 2 * 106_816, "bfloat16", 4, 32, saves_dequantized=True)
    assert on_torchao.dequantized == linear // layers * 2  # the second layer's linear weights, in bfloat16


def test_bf16_is_half_of_float32_and_bits_order_the_quantized_rows():
    shape = model_shape("random:smollm2")
    assert 2 * weight_bytes(shape, "bfloat16") == weight_bytes(shape, "float32") == 4 * shape.total_parameters
    four, eight, half = (weight_bytes(shape, p, backend="bitsandbytes") for p in ("4bit", "8bit", "bfloat16"))
    assert four < eight < half
    plan = plan_memory(shape, 8, 256, "cuda", available=80 * 2**30)
    weights = {row.precision: row.weights for row in plan.rows}
    assert weights["4bit"] < weights["8bit"] < weights["bfloat16"] < weights["float32"]
    assert weights["bfloat16"] * 2 == weights["float32"]


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "8bit", "4bit"])
def test_the_planned_weights_are_the_bytes_a_cpu_load_stores(tmp_path, precision):
    """On CPU (torchao) the plan counts exactly what a load holds: int8 values with their scales and zero points."""
    folder = save_tiny_causal_lm(tmp_path / "model")
    quantize = precision if precision.endswith("bit") else None
    dtype = "float32" if precision == "float32" else "bfloat16"
    loaded = load_model(str(folder), device="cpu", dtype=dtype, quantize=quantize)
    assert weight_bytes(model_shape(str(folder)), precision, dtype, "torchao") == stored_bytes(loaded.model)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_saved_activations_match_what_autograd_saves_for_red(dtype):
    model = random_model("tiny", torch.device("cpu"), dtype)
    model.requires_grad_(False)
    trained = apply_method(model, MethodSpec("red"), "causal-lm").train()
    ids = torch.randint(4, 512, (4, 32), generator=torch.Generator().manual_seed(0))
    meter = SavedTensorMeter(trained)
    with meter.hooks():
        train_step(trained, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}, None)
    planned = 128 * saved_bytes_per_token(model_shape("tiny"), dtype.itemsize)
    assert planned == pytest.approx(meter.total, rel=0.02)


def test_the_verdict_flips_at_the_device_size():
    shape = model_shape("random:llama-7b")
    bf16 = plan_memory(shape, 4, 512, "cuda", available=10**15).rows[1]
    assert bf16.precision == "bfloat16" and bf16.generation < bf16.training
    at = {
        size: plan_memory(shape, 4, 512, "cuda", available=size).rows[1] for size in (bf16.training, bf16.training - 1)
    }
    assert at[bf16.training].verdict == "fits"
    assert at[bf16.training - 1].verdict == "fits for generation only"
    assert plan_memory(shape, 4, 512, "cuda", available=bf16.generation - 1).rows[1].verdict == "does not fit"
    table = plan_markdown(plan_memory(shape, 4, 512, "cuda", available=16 * 2**30))
    assert "| 4-bit (bfloat16 compute) | 3.60 GiB |" in table and "✗ does not fit" in table and "✓ fits" in table


def test_the_device_memory_is_read_and_an_uncached_hub_id_is_not_estimated(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (7 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "H200")
    assert available_memory("cuda") == (7 * 2**30, "free on H200")

    def no_grant(device):
        raise RuntimeError("CUDA must not be initialized in the main process")

    monkeypatch.setattr(torch.cuda, "mem_get_info", no_grant)
    with pytest.raises(ValueError, match="CUDA's free memory cannot be read here .*give the memory to plan for"):
        available_memory("cuda")
    free, what = available_memory("cpu")
    assert free > 2**20 and what.endswith("RAM")
    assert plan_memory(model_shape("tiny"), 1, 8, "cpu").available_what == what
    with pytest.raises(ShapeUnavailable, match="cannot be estimated offline: its config is not in the local"):
        model_shape("no-such-owner/no-such-model")
    with pytest.raises(ValueError, match="batch size and max length must be positive"):
        plan_memory(model_shape("tiny"), 0, 8, "cpu")


def test_the_model_tab_shows_the_plan_from_the_config_alone_before_loading(tmp_path, monkeypatch):
    from red_explorer.app.ui.handlers import model as handlers
    from red_explorer.models import memory_plan

    folder = save_tiny_causal_lm(tmp_path / "model")
    for weights in folder.glob("*.safetensors"):
        weights.unlink()  # the plan reads config.json only: no weights, nothing loaded
    shape = model_shape(str(folder))
    need = plan_memory(shape, 4, 64, "cpu", available=0, compute_dtype="float32").rows
    monkeypatch.setattr(memory_plan, "available_memory", lambda device: (need[1].training, "available system RAM"))
    table = handlers.memory_plan(str(folder), "causal-lm", "cpu", "auto", 4, 64)
    expected = plan_markdown(plan_memory(shape, 4, 64, "cpu", compute_dtype="float32"), chosen="float32")
    assert table == expected
    assert f"| **float32** (your choice) | {need[0].weights / 2**10:,.0f} KiB |" in table  # "auto" is float32 here
    assert "| ◐ fits for generation only |" in table and table.count("(your choice)") == 1
    quantized = handlers.memory_plan(str(folder), "causal-lm", "cpu", "auto", 4, 64, "4bit")
    assert "| **4-bit (float32 compute)** (your choice) |" in quantized and "| float32 |" in quantized
    assert "| bfloat16 |" in table and "| ✓ fits |" in table and "| 8-bit (float32 compute) |" in table
    assert "RED training (4 × 64 tokens)" in table
    refused = handlers.memory_plan("no-such-owner/no-such-model", "causal-lm", "cpu", "auto", 4, 64)
    assert "Cannot be estimated: &#x27;no-such-owner/no-such-model&#x27; cannot be estimated offline" in refused


def test_the_plan_command_prints_the_table_or_json(capsys):
    import json

    from red_explorer.cli.main import main

    args = ["plan", "--model", "tiny", "--device", "cpu", "--dtype", "bfloat16", "--batch-size", "2"]
    assert main([*args, "--max-length", "16", "--memory-gib", "0.001", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = plan_memory(model_shape("tiny"), 2, 16, "cpu", available=int(0.001 * 2**30))
    assert [row["training"] for row in printed["rows"]] == [row.training for row in expected.rows]
    assert printed["available"] == 1_073_741 and printed["shape"]["linear_weights"] == 73_728
    assert printed["verdicts"] == {"float32": "fits", "bfloat16": "fits", "8bit": "fits", "4bit": "fits"}
    assert main([*args, "--max-length", "4096", "--memory-gib", "0.001"]) == 0
    table = capsys.readouterr().out
    assert table == plan_markdown(plan_memory(model_shape("tiny"), 2, 4096, "cpu", int(0.001 * 2**30))) + "\n"
    assert table.count("✗ does not fit") == 4
    gpu = ["plan", "--model", "random:llama-7b", "--device", "cuda", "--memory-gib", "16", "--max-length", "256"]
    assert main(gpu) == 0  # a device this machine need not have, with its memory given
    table = capsys.readouterr().out
    assert "| 4-bit (bfloat16 compute) | 3.60 GiB | 12.78 GiB | 4.75 GiB | ✓ fits |" in table
    assert "| bfloat16 | 12.55 GiB | 21.73 GiB | 13.70 GiB | ◐ fits for generation only |" in table


def test_a_classifier_is_planned_for_inference_with_no_cache(tmp_path):
    from tiny_models import tiny_model

    tiny_model("bert").save_pretrained(tmp_path / "bert")
    shape = model_shape(str(tmp_path / "bert"), "classification")
    assert (shape.task, shape.logit_width, shape.layers, shape.hidden_size, shape.gated_ffn) == (
        "classification",
        3,
        2,
        32,
        False,
    )
    plan = plan_memory(shape, 2, 16, "cpu", available=0, compute_dtype="float32")
    weights = 4 * shape.total_parameters
    assert plan.rows[0].generation == weights + 32 * 4 * (2 * 64 + 4 * 32) + 2 * 3 * (4 + 4)  # no KV cache
    assert plan.rows[0].training - weights - 16 * 2 * 2 * 32 == 32 * saved_bytes_per_token(shape, 4) + 2 * 3 * 12
    assert "| inference (2 × 16 tokens) |" in plan_markdown(plan) and plan.rows[0].verdict == "does not fit"


def test_the_cpu_plan_says_why_its_quantized_rows_weigh_and_train_as_they_do():
    plan = plan_memory(model_shape("random:smollm2"), 8, 64, "cpu", available=2**40, compute_dtype="float32")
    rows = {row.precision: row for row in plan.rows}
    assert rows["4bit"].weights > rows["8bit"].weights  # a byte per value either way; 4 bits add group scales
    assert rows["8bit"].training > rows["float32"].training and rows["4bit"].training > rows["float32"].training
    table = plan_markdown(plan)
    note = (
        "On cpu, torchao stores 8- and 4-bit weights a byte per value (4 bits add a scale and a zero point per 32 "
        "weights, so they come out a little larger than 8) and keeps embeddings and norms in float32; a training "
        "step also holds a float32 copy of each quantized weight for its backward pass, so here 8 and 4 bits need "
        "more memory to train than float32 without quantizing."
    )
    assert table.endswith("\n\n" + note)
    cuda = plan_markdown(plan_memory(model_shape("random:smollm2"), 8, 64, "cuda", available=2**40))
    assert cuda.endswith(
        "\n\n8 and 4 bits as bitsandbytes stores them on cuda (NF4 with double quantization in 4 bits)."
    )
