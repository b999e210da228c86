"""The command line end to end: train, generate, merge, ablate, errors and --help."""

import contextlib
import io
import json
from dataclasses import dataclass

import pytest
import torch
from tiny_models import logits, sample_inputs, save_tiny_causal_lm
from transformers import AutoModelForCausalLM

from red_explorer.cli.main import main
from red_explorer.core.registry import load_edits
from red_explorer.models.loading import load_model

SAMPLE = "red_explorer/samples/restaurants_e2e.csv"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(*args, check=True) -> Result:
    """Run `red-explorer ARGS` in this process (tests/test_package.py runs the installed command once)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit:  # --help and argument errors
            code = exit.code or 0
    result = Result(code, stdout.getvalue(), stderr.getvalue())
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}: {result.stderr[-2000:]}")
    return result


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def trained(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "red"
    cli(
        "train",
        "--model",
        model_dir,
        "--data",
        SAMPLE,
        "--max-rows",
        60,
        "--max-length",
        256,
        "--epochs",
        2,
        "--batch-size",
        8,
        "--sites",
        "ffn,attn",
        "--out",
        out,
    )
    return out


def test_train_writes_edits_and_metrics(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in (
        "val_loss_before",
        "val_loss_after",
        "trainable_parameters",
        "train_seconds",
        "peak_memory_bytes",
        "train_loss",
    ):
        assert key in metrics
    assert metrics["trainable_parameters"] == 2 * 32 * 2 * 2
    assert metrics["val_loss_after"] < metrics["val_loss_before"]
    assert len(metrics["train_loss"]) == 14  # 54 train rows / 8 = 7 batches x 2 epochs
    record = json.loads((trained / "red_config.json").read_text())
    assert record["sites"] == ["ffn", "attn"] and record["red"]["variant"] == "full"


def test_generate_shows_base_and_edits_side_by_side(model_dir, trained):
    result = cli(
        "generate", "--model", model_dir, "--edits", trained, "--prompt", "name[aromi]", "--max-new-tokens", 6, "--json"
    )
    rows = json.loads(result.stdout)
    assert [row["method"].split(" [")[0] for row in rows] == ["base", "RED full (ffn+attn)"]
    assert all(row["new_tokens"] == 6 and row["prompt"] == "name[aromi]" for row in rows)
    text = cli("generate", "--model", model_dir, "--edits", trained, "--prompt", "hello").stdout
    assert "=== hello" in text and "--- base" in text and "--- RED full (ffn+attn)" in text


def test_merge_writes_a_plain_checkpoint(model_dir, trained, tmp_path):
    cli("merge", "--model", model_dir, "--edits", trained, "--out", tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    edited = load_model(str(model_dir), device="cpu").model
    load_edits(edited, trained)
    assert (logits(plain, sample_inputs()) - logits(edited, sample_inputs())).abs().max() < 1e-4


def test_train_lora_writes_a_peft_adapter(model_dir, tmp_path):
    cli(
        "train",
        "--model",
        model_dir,
        "--data",
        SAMPLE,
        "--max-rows",
        20,
        "--max-steps",
        1,
        "--method",
        "lora",
        "--out",
        tmp_path,
    )
    assert (tmp_path / "adapter_config.json").is_file() and (tmp_path / "adapter_model.safetensors").is_file()
    assert json.loads((tmp_path / "adapter_config.json").read_text())["r"] == 8


def test_max_steps_is_the_runs_length_even_past_one_epoch(model_dir, tmp_path):
    # 20 rows, a tenth held out: 18 training rows are 3 steps of 8; 7 steps repeat the data
    cli(
        "train",
        "--model",
        model_dir,
        "--data",
        SAMPLE,
        "--max-rows",
        20,
        "--batch-size",
        8,
        "--max-steps",
        7,
        "--out",
        tmp_path,
    )
    assert len(json.loads((tmp_path / "metrics.json").read_text())["train_loss"]) == 7


def test_ablate_writes_the_results_table(model_dir, tmp_path):
    result = cli(
        "ablate",
        "--model",
        model_dir,
        "--data",
        SAMPLE,
        "--max-rows",
        20,
        "--max-steps",
        2,
        "--rows",
        "red:full:ffn,red:bias:attn",
        "--out",
        tmp_path,
    )
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [row["label"] for row in rows] == ["RED full (ffn)", "RED bias (attn)"]
    assert [row["trainable_parameters"] for row in rows] == [128, 64]
    assert (tmp_path / "results.csv").read_text().startswith("method,label,variant,sites,trainable_parameters")
    assert "RED bias (attn)" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "missing.csv", "--out", "x"], "missing.csv"),
        (["train", "--model", "no/such-model-here", "--data", SAMPLE, "--out", "x"], "no/such-model-here"),
        (["merge", "--model", "default", "--edits", "nowhere", "--out", "x"], "holds no edits"),
    ],
)
def test_errors_are_one_clear_line_and_a_nonzero_exit(args, message, tmp_path, model_dir):
    if args[0] == "train" and "missing.csv" in args:
        args = ["train", "--model", str(model_dir), "--data", str(tmp_path / "missing.csv"), "--out", tmp_path]
    result = cli(*args, check=False)
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert "Traceback" not in result.stderr


def test_bad_data_file_is_explained(model_dir, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("colour,size\nred,3\nblue,4\n")
    result = cli("train", "--model", model_dir, "--data", bad, "--out", tmp_path / "o", check=False)
    assert result.returncode == 1 and "error:" in result.stderr and "colour" in result.stderr


@pytest.mark.parametrize("command", ["train", "ablate", "generate", "merge", "bench"])
def test_every_command_has_help(command):
    result = cli(command, "--help")
    assert "--model" in result.stdout and "usage:" in result.stdout


def test_edits_roundtrip_keeps_tensor_values(model_dir, trained):
    from safetensors.torch import load_file

    tensors = load_file(str(trained / "edits.safetensors"))
    model = load_model(str(model_dir), device="cpu").model
    load_edits(model, trained)
    parameters = dict(model.named_parameters())
    assert all(torch.equal(parameters[name], value) for name, value in tensors.items())


def test_method_options_pass_through_option_flags(model_dir, tmp_path):
    out = tmp_path / "tare"
    cli(
        "train",
        "--model",
        model_dir,
        "--data",
        SAMPLE,
        "--max-rows",
        24,
        "--max-steps",
        1,
        "--method",
        "tare",
        "--option",
        "num_editors=3",
        "--option",
        "top_k=1",
        "--out",
        out,
    )
    record = json.loads((out / "red_config.json").read_text())
    assert record["tare"]["num_editors"] == 3 and record["tare"]["top_k"] == 1
    result = cli(
        "train",
        "--model",
        model_dir,
        "--data",
        SAMPLE,
        "--method",
        "lora",
        "--option",
        "editors=2",
        "--out",
        tmp_path / "x",
        check=False,
    )
    assert result.returncode == 1 and "LoRA has no option 'editors'" in result.stderr
