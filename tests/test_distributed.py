"""Training under `accelerate launch` with two CPU processes (DDP): one edits directory, same format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from app_helpers import free_port
from safetensors.torch import load_file
from tiny_models import save_tiny_causal_lm
from transformers import AutoModelForCausalLM

from red_explorer.core.checkpoint import read_tensors
from red_explorer.core.red.edit import red_vectors
from red_explorer.core.registry import load_edits

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLE = REPOSITORY / "red_explorer/samples/restaurants_e2e.csv"

RANK_SCRIPT = """
import os, sys
from safetensors.torch import save_file
from red_explorer.data.tables import DataConfig
from red_explorer.core.red.edit import red_vectors
from red_explorer.data.prepared import prepare_data
from red_explorer.core.registry import MethodSpec, apply_method
from red_explorer.models.loading import load_model
from red_explorer.engine.training import TrainConfig, run_training

loaded = load_model(sys.argv[1], device="cpu")
data = prepare_data(sys.argv[2], loaded.tokenizer, DataConfig(max_length=128, max_rows=40))
model = apply_method(loaded.model, MethodSpec("red"), "causal-lm")
config = TrainConfig(learning_rate=1e-2, max_steps=3, batch_size=4)
result = run_training(model, lambda epoch: data.train_batches(4, epoch), None, "causal-lm", config)
tensors = {name: vector.detach().contiguous() for name, vector in red_vectors(model).items()}
save_file(tensors, os.path.join(sys.argv[3], f"rank{os.environ['RANK']}.safetensors"),
          metadata={"processes": str(result.num_processes), "steps": str(result.steps)})
"""


DDP_OPTIONS = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]


def accelerate_launch(arguments: list[str], options: list[str] = DDP_OPTIONS) -> subprocess.CompletedProcess:
    """``accelerate launch OPTIONS ...`` on this CPU-only machine; by default two DDP processes over gloo.

    (``--cpu --num_processes 2`` starts a single process in accelerate 1.15: multi-CPU goes through mpirun.)
    """
    command = [sys.executable, "-m", "accelerate.commands.launch", *options, "--dynamo_backend", "no"]
    command += ["--main_process_port", str(free_port()), *arguments]
    path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # gloo on the CPU, even where a GPU exists
    result = subprocess.run(command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")


def test_cli_train_on_two_processes_writes_one_loadable_edits_directory(tiny_folder, tmp_path):
    out = tmp_path / "edits"
    accelerate_launch(
        ["-m", "red_explorer", "train", "--model", str(tiny_folder), "--data", str(SAMPLE), "--max-rows", "40"]
        + ["--max-length", "128", "--max-steps", "3", "--batch-size", "4", "--out", str(out)]
    )
    assert [path.name for path in tmp_path.iterdir()] == ["edits"]
    assert sorted(path.name for path in out.iterdir()) == [
        "edits.safetensors",
        "metrics.json",
        "red_config.json",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 2 and len(metrics["train_loss"]) == 3
    model = AutoModelForCausalLM.from_pretrained(tiny_folder)
    load_edits(model, out)
    saved = read_tensors(out)
    assert set(saved) == set(red_vectors(model))
    for name, vector in red_vectors(model).items():
        assert torch.equal(vector.detach(), saved[name])
    trained = [name for name, vector in saved.items() if not torch.equal(vector, torch.ones_like(vector))]
    assert any(name.endswith("red_scale") for name in trained), "the scales never moved: nothing was trained"


def test_both_processes_end_with_the_same_vectors(tiny_folder, tmp_path):
    script = tmp_path / "train_rank.py"
    script.write_text(RANK_SCRIPT)
    accelerate_launch([str(script), str(tiny_folder), str(SAMPLE), str(tmp_path)])
    first, second = (load_file(str(tmp_path / f"rank{rank}.safetensors")) for rank in (0, 1))
    assert set(first) == set(second)
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "rank0.safetensors"), "pt") as handle:
        assert handle.metadata() == {"processes": "2", "steps": "3"}
