"""Smoke run of `python -m red_explorer bench --model tiny --quick`: every figure present and sane (no timings)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from red_explorer.bench.report import TARGETS
from red_explorer.bench.run import HEADLINE_KEYS
from red_explorer.bench.serve import GENERATE_VARIANTS
from red_explorer.bench.setup import RANDOM_SHAPES
from red_explorer.bench.train import TRAIN_VARIANTS
from red_explorer.cli.main import main


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert main(["bench", "--model", "tiny", "--quick", "--device", "cpu", "--out", str(out)]) == 0
    return out, json.loads((out / "bench.json").read_text())


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_every_headline_figure_is_a_positive_number(bench_run):
    _, result = bench_run
    for key in HEADLINE_KEYS:
        if key == "store_memory_per_run_mb":  # kept runs add no live tensors: 0 is the expected figure
            assert math.isfinite(result[key]) and 0 <= result[key] < 2, f"{key} = {result[key]!r}"
            continue
        assert positive(result[key]), f"{key} = {result[key]!r}"
    assert set(HEADLINE_KEYS) <= set(result["summary"])
    assert result["model"] == "tiny" and result["device"] == "cpu" and result["quick"] is True
    assert result["batch_shape"] == {"train": [2, 16], "generate": [8, 8, 4]}
    assert "torch" in result["versions"] and result["device_name"]


def test_training_rows_have_times_memory_and_parameter_counts(bench_run):
    _, result = bench_run
    training = result["training"]
    assert list(training) == list(TRAIN_VARIANTS)
    for name, row in training.items():
        assert row["times_ms"] and all(positive(value) for value in row["times_ms"]), name
        assert positive(row["peak_memory_bytes"]) and positive(row["ratio_to_floor"]), name
    shape = RANDOM_SHAPES["tiny"]
    sites = shape["num_hidden_layers"]
    assert training["floor"]["ratio_to_floor"] == 1.0 and training["floor"]["trainable_parameters"] == 0
    assert training["red_ffn"]["trainable_parameters"] == 2 * shape["hidden_size"] * sites
    assert training["red_ffn_attn"]["trainable_parameters"] == 4 * shape["hidden_size"] * sites
    assert training["red_ffn"]["trainable_parameters"] < training["lora_r8"]["trainable_parameters"]
    assert training["full"]["peak_memory_bytes"] > training["red_ffn"]["peak_memory_bytes"]


def test_generation_many_edits_and_engine_figures(bench_run):
    _, result = bench_run
    assert list(result["generation"]) == list(GENERATE_VARIANTS)
    rounds, others = result["shape"]["generate_rounds"], len(GENERATE_VARIANTS) - 1
    for name, row in result["generation"].items():
        runs = rounds * others if name == "base" else rounds  # the base runs right before every other turn
        assert positive(row["tokens_per_second"]) and len(row["times_ms"]) == runs, name
    assert result["generation"]["base"]["time_ratio_to_base"] == 1.0
    many = result["many_edits"]
    assert many["distinct_edits"] == 8 and positive(many["forward_ratio"]) and positive(many["generate_ratio"])
    assert len(many["generate"]["many_edits"]["times_ms"]) == rounds
    engine = result["engine"]
    assert engine["tokens"] > 0 and 0 < engine["padding_efficiency"] <= 1
    assert positive(engine["engine_tokens_per_second"]) and positive(engine["raw_tokens_per_second"])
    assert len(engine["engine_seconds"]) == len(engine["raw_seconds"]) == 1


def test_file_sizes_match_the_files(bench_run):
    out, result = bench_run
    swap = result["swap"]
    for relative, size in swap["files"].items():
        assert (out / relative).stat().st_size == size
    sizes = swap["sizes"]
    for method in ("red", "lora", "tare"):
        folder = out / sizes[f"{method}_directory"]
        assert sizes[f"{method}_bytes"] == sum(path.stat().st_size for path in folder.iterdir())
    assert sizes["red_bytes"] < sizes["lora_bytes"] < sizes["full_checkpoint_bytes"]
    assert (out / sizes["red_directory"] / "edits.safetensors").is_file()


def test_targets_and_markdown_report(bench_run):
    out, result = bench_run
    assert [verdict["key"] for verdict in result["targets"]] == [target.key for target in TARGETS]
    assert all(isinstance(verdict["met"], bool) for verdict in result["targets"])
    assert result["summary"]["targets"] == len(TARGETS)
    report = (out / "bench.md").read_text()
    for heading in ("## Targets", "## Training step", "## Generation", "## Many edits", "## Engine overhead"):
        assert heading in report


def test_runs_as_edits_figures(bench_run):
    out, result = bench_run
    store, batched = result["run_store"], result["batched_compare"]
    assert store["runs"] == 25 and "garbage collector" in store["measure"]
    assert store["live_tensor_bytes_all_runs"] - store["live_tensor_bytes_one_run"] < 24 * 2**20
    assert 0 < store["run_folder_bytes"] < store["model_copy_mb"] * 2**20  # a kept run is far smaller than a model
    assert len(list((out / "run_store" / "bench").iterdir())) == 25
    assert batched["runs"] == 8 and batched["batched_calls"] == 1 and batched["sequential_calls"] == 9
    assert batched["same_tokens"] is True and batched["threads"] == 1
    assert positive(batched["ratio"]) and batched["ratio"] < 1  # one call of 9 rows beats 9 calls of one row
    assert result["compare_batched_over_sequential"] == batched["ratio"]
    assert all(positive(value) for value in batched["batched_ms"] + batched["sequential_ms"])
    assert "## Runs as edits" in (out / "bench.md").read_text()


def test_unknown_random_model_is_refused(tmp_path):
    from red_explorer.bench.setup import load_bench_model

    with pytest.raises(ValueError, match="random:smollm2"):
        load_bench_model("random:gpt5", device="cpu")


def test_every_demo_preset_runs_end_to_end_on_the_stand_in_model(bench_run):
    from red_explorer.app.demo_presets import PRESETS

    out, result = bench_run
    demos = result["demos"]
    assert list(demos["presets"]) == list(PRESETS) and demos["stand_in"] == "tiny"
    for record in demos["presets"].values():
        assert record["steps"] and set(record["steps"].values()) == {2}, record["name"]
        stages = {stage: value for stage, value in record["stages"].items() if stage != "load model"}
        assert record["seconds"] == pytest.approx(sum(stages.values())) and positive(record["seconds"])
    style = demos["presets"]["style"]
    assert list(style["first_generation"]) == ["base", *style["steps"]] and demos["presets"]["sentiment"]["task"] == (
        "classification"
    )
    assert result["demo_preset_max_seconds"] == max(record["seconds"] for record in demos["presets"].values())
    assert "## One-minute demos" in (out / "bench.md").read_text()


def test_sections_are_saved_as_they_finish(tmp_path, monkeypatch):
    """A run cut short (a GPU slot's time limit) keeps every section that finished in bench.json."""
    from red_explorer.bench import run

    def stop(*args):
        raise RuntimeError("time is up")

    monkeypatch.setattr(run, "bench_generation", stop)
    with pytest.raises(RuntimeError, match="time is up"):
        run.run_benchmark("tiny", device="cpu", quick=True, out=str(tmp_path))
    kept = json.loads((tmp_path / "bench.json").read_text())
    assert kept["complete"] is False and kept["model"] == "tiny"
    assert {"swap", "training"} <= set(kept) and "generation" not in kept
    assert kept["training"]["red_ffn"]["median_ms"] > 0


def test_a_gpu_slot_times_few_generation_rounds():
    from red_explorer.bench.setup import choose_shape

    gpu, cpu = choose_shape(torch.device("cuda"), False, "random:smollm2"), choose_shape(torch.device("cpu"), False, "")
    assert gpu.generate_rounds * gpu.generate_repeats == 2 < gpu.rounds * gpu.repeats == 15
    assert cpu.generate_rounds * cpu.generate_repeats == cpu.rounds * cpu.repeats == 7


def test_memory_per_method_on_bf16_8bit_and_4bit_bases_beside_the_plan(bench_run):
    """On CPU the peaks are the estimate the training section makes; the plan's is within 1.5× of each."""
    out, result = bench_run
    memory = result["memory"]
    precisions = memory["precisions"]
    assert list(precisions) == ["bfloat16", "8bit", "4bit"] and memory["compute_dtype"] == "bfloat16"
    for name, record in precisions.items():
        estimate = record["estimate"]
        assert record["weights"] == estimate["weights"], name  # torchao's storage, counted exactly
        assert set(record["generation"]) == {"base", "red_attached", "lora_attached", "tare_attached"}
        assert ("full" in record["training"]) == (name == "bfloat16")  # full fine-tuning refuses a quantized base
        assert 1 / 1.5 < record["training"]["red_ffn"] / estimate["red_training"] < 1.5, name
        assert record["training"]["red_ffn"] < record["training"]["lora_r8"] < 2 * estimate["red_training"]
        assert record["weights"] < record["generation"]["base"] < estimate["generation"], name
    for record in precisions.values():  # what autograd saves (torchao: dequantized weights too), within 5 %
        saved = record["estimate"]["red_training_saved_only"]
        assert record["training"]["red_ffn"] == pytest.approx(saved, rel=0.05)
    bf16 = precisions["bfloat16"]
    assert precisions["8bit"]["weights"] < bf16["weights"] and precisions["4bit"]["weights"] < bf16["weights"]
    report = (out / "bench.md").read_text()
    assert "## Memory per base precision" in report and "| plan: RED training |" in report


def test_the_compiled_step_is_timed_against_eager_on_the_same_model(bench_run):
    out, result = bench_run
    compiled = result["compiled_step"]
    assert compiled["mode"] == "default" and compiled["compile_seconds"] > 0  # CUDA graphs only on a GPU
    assert compiled["first_loss_compiled"] == pytest.approx(compiled["first_loss_eager"], abs=1e-4)  # float32
    assert positive(compiled["red_compiled_ms"]) and positive(compiled["red_eager_ms"])
    assert result["red_compiled_step_over_eager"] == compiled["compiled_over_eager"] > 0
    floor = result["training"]["floor"]["median_ms"]
    assert compiled["compiled_over_floor"] == pytest.approx(compiled["red_compiled_ms"] / floor)
    assert "## Compiled training step" in (out / "bench.md").read_text()


def test_red_generation_is_timed_eager_against_compiled_with_the_same_tokens(bench_run):
    out, result = bench_run
    compiled = result["compiled_generation"]
    assert compiled["mode"] == "default" and compiled["compile_seconds"] > 0 and compiled["same_tokens"] is True
    assert positive(compiled["red_compiled_ms"]) and positive(compiled["red_eager_ms"])
    tokens = result["shape"]["generate_batch"] * result["shape"]["new_tokens"]
    assert compiled["red_eager_tokens_per_second"] == pytest.approx(tokens / compiled["red_eager_ms"] * 1e3)
    assert result["red_compiled_generate_over_eager"] == compiled["compiled_over_eager"] > 0
    assert result["summary"]["red_compiled_generate_over_eager"] == compiled["compiled_over_eager"]
    assert "## Compiled generation" in (out / "bench.md").read_text()
