"""The sweep's budget axis: each method's best rate trained again at other run lengths, and the card's curve."""

import json
from dataclasses import replace

import pytest
from test_cli import cli
from tiny_models import save_tiny_causal_lm

from red_explorer.choice.card import budget_rows, card_markdown, relative_rows
from red_explorer.choice.sweep import SweepConfig, run_sweep
from red_explorer.core.registry import MethodSpec
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.experiment import trained_run
from red_explorer.engine.training import TrainConfig
from red_explorer.models.loading import load_model

SAMPLE = "red_explorer/samples/pirate_style.jsonl"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def loaded_data(model_dir):
    loaded = load_model(str(model_dir), device="cpu")
    return loaded, prepare_data(SAMPLE, loaded.tokenizer, DataConfig(max_length=64, max_rows=24))


@pytest.fixture(scope="module")
def swept(loaded_data):
    loaded, data = loaded_data
    train = TrainConfig(max_steps=2, epochs=2.0, batch_size=4)
    config = SweepConfig(learning_rates=[1e-3, 5e-2], budgets=[2, 3, 5], train=train, forgetting=False)
    config.cost.new_tokens = 0
    progress = []
    result = run_sweep(loaded, data, [MethodSpec("red"), MethodSpec("lora")], config, lambda *a: progress.append(a))
    return result, progress


def test_each_best_rate_trains_again_at_every_other_budget(swept):
    result, _ = swept
    best = {row["label"]: row["learning_rate"] for row in result.best}
    assert [(p["label"], p["budget"], p["steps"]) for p in result.budget_points] == [
        ("RED full (ffn)", 3, 3),
        ("RED full (ffn)", 5, 5),
        ("LoRA r=8", 3, 3),
        ("LoRA r=8", 5, 5),
    ]
    assert all(point["learning_rate"] == best[point["label"]] for point in result.budget_points)
    assert len(result.points) == 4  # the grid itself ran at the sweep's own budget only


def test_a_budget_point_equals_a_single_run_at_that_budget_and_rate(swept, loaded_data):
    result, _ = swept
    loaded, data = loaded_data
    for point in result.budget_points:
        spec = MethodSpec(point["method"])
        config = TrainConfig(learning_rate=point["learning_rate"], max_steps=point["budget"], epochs=2.0, batch_size=4)
        with trained_run(loaded, data, spec, config) as run:
            assert run.metrics_after["loss"] == pytest.approx(point["after"], abs=1e-6)
            assert len(run.train_loss) == point["budget"]


def test_the_card_shows_one_curve_row_per_method_and_budget(swept):
    result, progress = swept
    results = result.to_dict()
    rows = budget_rows(results)
    assert [(row["label"], row["budget"]) for row in rows] == [
        ("RED full (ffn)", 2),
        ("RED full (ffn)", 3),
        ("RED full (ffn)", 5),
        ("LoRA r=8", 2),
        ("LoRA r=8", 3),
        ("LoRA r=8", 5),
    ]
    card = card_markdown(results)
    curve = card.split("## Budget curve")[1]
    red_at_5 = next(p for p in result.budget_points if p["budget"] == 5 and p["method"] == "red")
    assert f"| RED full (ffn) | 5 | {red_at_5['learning_rate']:g} | {red_at_5['after']:.4f} |" in curve
    assert {entry[1] for entry in progress} == {8}  # 4 grid points + 2 methods × 2 other budgets


def test_a_card_without_budgets_has_no_curve(swept):
    results = replace(swept[0], budget_points=[]).to_dict()
    assert "Budget curve" not in card_markdown(results)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"budgets": [30], "train": TrainConfig()}, "give the sweep's train config max_steps"),
        ({"budgets": [2.5], "train": TrainConfig(max_steps=2)}, "whole numbers of steps >= 1"),
        ({"budgets": [0], "train": TrainConfig(max_steps=2)}, "whole numbers of steps >= 1"),
    ],
)
def test_budgets_reject_nonsense(options, message):
    with pytest.raises(ValueError, match=message):
        SweepConfig(**options)


def test_cli_sweep_budgets_write_the_curve(model_dir, tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--model", str(model_dir), "--data", SAMPLE, "--max-rows", "16", "--methods", "red"]
    args += ["--lrs", "1e-2", "--max-steps", "2", "--budgets", "2,3", "--batch-size", "4", "--no-forgetting"]
    result = cli(*args, "--generation-tokens", "0", "--out", str(out))
    saved = json.loads((out / "results.json").read_text())
    assert [(p["budget"], p["steps"]) for p in saved["budget_points"]] == [(3, 3)]
    assert "RED full (ffn)           at 3 steps val_loss" in result.stdout
    assert "| RED full (ffn) | 3 | 0.01 |" in (out / "results.md").read_text()


def test_the_card_compares_per_parameter_and_per_second_against_its_first_method(swept):
    results = swept[0].to_dict()
    rows = relative_rows(results)
    red, lora = rows
    assert red["parameters_ratio"] == 1.0 and red["time_ratio"] == 1.0
    assert lora["parameters_ratio"] == pytest.approx(lora["method_parameters"] / red["method_parameters"])
    assert lora["time_ratio"] == pytest.approx(lora["train_seconds"] / red["train_seconds"])
    section = card_markdown(results).split("## Per parameter and per second")[1].split("## Budget curve")[0]
    assert (
        f"| LoRA r=8 | {lora['after']:.4f} | {lora['method_parameters']:,} | {lora['parameters_ratio']:.1f} |"
        in section
    )


def test_cli_sweep_takes_method_options_for_equal_parameter_comparisons(model_dir, tmp_path):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--model",
        str(model_dir),
        "--data",
        SAMPLE,
        "--max-rows",
        "16",
        "--methods",
        "red,lora:rank=1:alpha=2",
    ]
    args += ["--lrs", "1e-2", "--max-steps", "1", "--batch-size", "4", "--no-forgetting", "--generation-tokens", "0"]
    cli(*args, "--out", str(out))
    best = json.loads((out / "results.json").read_text())["best"]
    assert [(row["label"], row["spec"]["rank"], row["spec"]["alpha"]) for row in best[1:]] == [("LoRA r=1", 1, 2)]
    assert "## Per parameter and per second" in (out / "results.md").read_text()


def test_cli_sweep_method_option_errors_name_the_option(model_dir, tmp_path):
    args = ["sweep", "--model", str(model_dir), "--data", SAMPLE, "--methods", "lora:depth=2", "--out", str(tmp_path)]
    result = cli(*args, check=False)
    assert result.returncode != 0 and "LoRA has no option 'depth'" in result.stderr
