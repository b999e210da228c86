"""FSDP2 under `accelerate launch` on two CPU processes (gloo): the base is sharded, the trained method is not changed.

Two processes with batch size B train on the same rows per step as one process with batch size B and
gradient accumulation 2 (batch 2k on process 0, 2k + 1 on process 1), so the trained tensors must agree.
Measured: they agree exactly (the largest difference is 0.0) for RED, LoRA and TARE in float32; the tests
allow 1e-6 (absolute and relative) for a different summation order of the gradient reduction.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from test_distributed import accelerate_launch
from tiny_models import save_tiny_causal_lm

from red_explorer.cli.main import main
from red_explorer.core.checkpoint import read_tensors
from red_explorer.core.registry import MethodSpec, apply_method
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.training import TrainConfig, run_training
from red_explorer.models.loading import load_model

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLE = REPOSITORY / "red_explorer/samples/restaurants_e2e.csv"
CONFIG = REPOSITORY / "configs/accelerate/fsdp2_cpu_2proc.yaml"
TOLERANCE = dict(rtol=1e-6, atol=1e-6)
TRAIN = ["--data", str(SAMPLE), "--max-rows", "40", "--max-length", "128", "--max-steps", "3", "--batch-size", "4"]

CLIP = 1e-3  # far below the gradient norms, so every step is clipped
SHARD_SCRIPT = """
import json, os, sys
from safetensors.torch import save_file
from torch.distributed.tensor import DTensor
from red_explorer.core.registry import MethodSpec, apply_method
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.distributed import gathered_trainables, shard_model
from red_explorer.engine.training import TrainConfig, run_training
from red_explorer.models.loading import load_model

SCALE = "model.layers.0.mlp.down_proj.red_scale"
records, tensors = {}, {}
for when in ("shard first", "shard in run_training"):  # as train_method does / accelerate's prepare in the loop
    loaded = load_model(sys.argv[1], device="cpu")
    data = prepare_data(sys.argv[2], loaded.tokenizer, DataConfig(max_length=128, max_rows=40))
    model = apply_method(loaded.model, MethodSpec("red"), "causal-lm")
    if when == "shard first":
        model = shard_model(model)
    config = TrainConfig(max_steps=2, batch_size=4, max_grad_norm=CLIP_VALUE)  # clipping must see the shards
    run_training(model, lambda epoch: data.train_batches(4, epoch), None, "causal-lm", config)
    weight, scale = model.get_parameter("model.layers.0.mlp.down_proj.weight"), model.get_parameter(SCALE)
    record = {"weight": list(weight.to_local().shape), "scale": list(scale.to_local().shape),
              "dtensors": all(isinstance(p, DTensor) for p in model.parameters())}
    with gathered_trainables(model):
        gathered = model.get_parameter(SCALE)
        record["gathered"] = [type(gathered).__name__, list(gathered.shape)]
        tensors[when + ": shard"] = scale.to_local().detach().contiguous()
        if not isinstance(gathered, DTensor):
            tensors[when + ": whole"] = gathered.detach().contiguous()
    record["restored"] = model.get_parameter(SCALE) is scale
    records[when] = record
save_file(tensors, os.path.join(sys.argv[3], f"rank{os.environ['RANK']}.safetensors"),
          metadata={"records": json.dumps(records)})
"""


def fsdp_launch(arguments: list[str], config: Path = CONFIG) -> subprocess.CompletedProcess:
    """``accelerate launch --config_file CONFIG --num_processes 2 ...``: two FSDP2 processes on CPU."""
    return accelerate_launch(arguments, ["--config_file", str(config), "--num_processes", "2"])


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")


def train_both(tiny_folder, tmp_path, method: str, config: Path = CONFIG, extra=()) -> tuple[Path, Path]:
    """The same run trained by FSDP2 on two processes (batch 4) and by one process (batch 4, accumulation 2)."""
    sharded, single = tmp_path / "fsdp", tmp_path / "single"
    arguments = ["train", "--method", method, "--model", str(tiny_folder), *TRAIN, "--home", str(tmp_path / "home")]
    arguments += ["--device", "cpu", *extra]
    fsdp_launch(["-m", "red_explorer", *arguments, "--out", str(sharded)], config)
    assert main([*arguments, "--gradient-accumulation", "2", "--out", str(single)]) == 0
    return sharded, single


def assert_same_tensors(sharded: dict, single: dict) -> None:
    assert sorted(sharded) == sorted(single)
    for name in single:
        torch.testing.assert_close(sharded[name], single[name], **TOLERANCE)


def test_fsdp2_red_run_equals_one_process_and_loads_and_generates(tiny_folder, tmp_path, capsys):
    sharded, single = train_both(tiny_folder, tmp_path, "red")
    assert sorted(path.name for path in sharded.iterdir()) == ["edits.safetensors", "metrics.json", "red_config.json"]
    metrics, reference = (json.loads((out / "metrics.json").read_text()) for out in (sharded, single))
    assert metrics["num_processes"] == 2 and reference["num_processes"] == 1
    torch.testing.assert_close(metrics["train_loss"], reference["train_loss"], **TOLERANCE)
    assert metrics["trainable_parameters"] == reference["trainable_parameters"] == 2 * 2 * 32  # scale + bias, 2 layers
    vectors = read_tensors(sharded)
    assert_same_tensors(vectors, read_tensors(single))
    assert all(vector.shape == (32,) for vector in vectors.values())  # whole vectors, not one process's half
    moved = [name for name, vector in vectors.items() if name.endswith("red_scale") and not torch.all(vector == 1)]
    assert moved, "the scales never moved: nothing was trained"
    capsys.readouterr()
    command = ["generate", "--model", str(tiny_folder), "--device", "cpu", "--edits", str(sharded), str(single)]
    assert main([*command, "--prompt", "The Punter", "--max-new-tokens", "6", "--json"]) == 0
    base, from_fsdp, from_single = json.loads(capsys.readouterr().out)
    assert from_fsdp["new_tokens"] == 6 and from_fsdp["text"] == from_single["text"]
    assert from_fsdp["method"].startswith("RED") and base["method"] == "base"


@pytest.mark.parametrize("method, weights", [("lora", "adapter_model"), ("tare", "edits")])
def test_fsdp2_lora_and_tare_runs_equal_one_process(tiny_folder, tmp_path, method, weights):
    sharded, single = train_both(tiny_folder, tmp_path, method)
    tensors = [read_safetensors(out / f"{weights}.safetensors") for out in (sharded, single)]
    assert_same_tensors(*tensors)
    assert len(tensors[0]) == {"lora": 8, "tare": 6}[method]  # q/v A and B on 2 layers; scale/bias/selector on 2
    losses = [json.loads((out / "metrics.json").read_text())["train_loss"] for out in (sharded, single)]
    torch.testing.assert_close(losses[0], losses[1], **TOLERANCE)


def test_fsdp2_with_decay_toward_the_start_and_a_scale_rate_equals_one_process(tiny_folder, tmp_path):
    """The recipe options that keep state beside the optimizer (the starting values the decay pulls toward, a
    group per rate) hold the same shards as the parameters they belong to."""
    recipe = ["--weight-decay", "0.5", "--decay-toward-start", "--lr-factor", "red_scale=0.3"]
    sharded, single = train_both(tiny_folder, tmp_path, "red", extra=recipe)
    assert_same_tensors(read_tensors(sharded), read_tensors(single))
    config = json.loads((sharded / "metrics.json").read_text())["train_config"]
    assert config["decay_toward_start"] and config["lr_factors"] == {"red_scale": 0.3}


def test_the_8_gpu_bf16_config_on_two_cpu_processes_equals_one_bf16_process(tiny_folder, tmp_path):
    """The shipped 8-GPU config itself (bf16 mixed precision, activation checkpointing), with 2 processes.

    accelerate's bf16 policy reduces the gradients in bf16, so the vectors differ from one process by a
    few bf16 roundings of each step (measured 8.9e-5; one step moves a vector by up to the rate, 3e-2).
    """
    config = REPOSITORY / "configs/accelerate/fsdp2_8gpu_bf16.yaml"
    sharded, single = train_both(tiny_folder, tmp_path, "red", config, ["--dtype", "bfloat16"])
    vectors, reference = read_tensors(sharded), read_tensors(single)
    assert sorted(vectors) == sorted(reference) and all(vector.dtype == torch.float32 for vector in vectors.values())
    for name in reference:
        torch.testing.assert_close(vectors[name], reference[name], rtol=0, atol=1e-3)
    assert max((vectors[name] - 1).abs().max() for name in vectors if name.endswith("red_scale")) > 1e-2


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


def test_fsdp2_shards_the_frozen_base_and_the_vectors_and_gathers_for_the_main_process(tiny_folder, tmp_path):
    script = tmp_path / "shard_rank.py"
    script.write_text(SHARD_SCRIPT.replace("CLIP_VALUE", repr(CLIP)))
    fsdp_launch([str(script), str(tiny_folder), str(SAMPLE), str(tmp_path)])
    records, saved = [], []
    for rank in (0, 1):
        with safe_open(str(tmp_path / f"rank{rank}.safetensors"), "pt") as handle:
            records.append(json.loads(handle.metadata()["records"]))
            saved.append({name: handle.get_tensor(name) for name in handle.keys()})
    reference = clipped_single_process_scale(tiny_folder)
    for when in ("shard first", "shard in run_training"):
        for record in (records[0][when], records[1][when]):  # down_proj.weight is (32, 64): 16 rows, 16 of 32 scales
            assert record["dtensors"] and record["weight"] == [16, 64] and record["scale"] == [16]
            assert record["restored"]  # the sharded parameter is back after the block
        assert records[0][when]["gathered"] == ["Parameter", [32]]  # the main process holds whole vectors to save
        assert records[1][when]["gathered"] == ["DTensor", [32]]  # the other keeps its shard (global shape 32)
        assert f"{when}: whole" not in saved[1]
        whole = saved[0][f"{when}: whole"]
        halves = torch.cat([saved[0][f"{when}: shard"], saved[1][f"{when}: shard"]])
        torch.testing.assert_close(whole, halves, rtol=0, atol=0)
        torch.testing.assert_close(whole, reference, **TOLERANCE)  # clipped as one process clips
    assert not torch.all(reference == 1)


def clipped_single_process_scale(tiny_folder) -> torch.Tensor:
    """Layer 0's trained FFN scale from one process: batch 4, accumulation 2, the script's clipping."""
    loaded = load_model(str(tiny_folder), device="cpu")
    data = prepare_data(str(SAMPLE), loaded.tokenizer, DataConfig(max_length=128, max_rows=40))
    model = apply_method(loaded.model, MethodSpec("red"), "causal-lm")
    config = TrainConfig(max_steps=2, batch_size=4, gradient_accumulation=2, max_grad_norm=CLIP)
    run_training(model, lambda epoch: data.train_batches(4, epoch), None, "causal-lm", config)
    return model.get_parameter("model.layers.0.mlp.down_proj.red_scale").detach()
