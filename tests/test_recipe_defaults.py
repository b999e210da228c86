"""RED's defaults are the measured recipe: today's unless a candidate beat it on every task (benchmarks/red_recipe)."""

import argparse
import json
from dataclasses import fields
from pathlib import Path

from red_explorer.cli.common import add_recipe_arguments
from red_explorer.core.red.method import Red, RedOptions
from red_explorer.engine.training import TrainConfig

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "red_recipe" / "results.json"
RECIPE_FIELDS = ("scheduler", "warmup_ratio", "weight_decay", "decay_toward_start", "lr_factors", "max_grad_norm")


def recorded() -> dict:
    return json.loads(RESULTS.read_text())


def test_the_default_recipe_is_the_baseline_unless_a_candidate_won_everywhere():
    results = recorded()
    expected = results["winners"][0] if results["winners"] else results["baseline"]
    assert results["default_recipe"]["name"] == expected


def test_training_defaults_equal_the_recorded_recipe():
    recipe = recorded()["default_recipe"]
    measured = TrainConfig(**recipe["train"])
    assert {name: getattr(TrainConfig(), name) for name in RECIPE_FIELDS} == {
        name: getattr(measured, name) for name in RECIPE_FIELDS
    }
    assert Red.default_learning_rate == recipe["rate"]


def test_red_option_defaults_equal_the_recorded_recipe():
    assert RedOptions() == RedOptions(**recorded()["default_recipe"]["options"])


def test_cli_recipe_flags_default_to_the_training_defaults():
    parser = argparse.ArgumentParser()
    add_recipe_arguments(parser)
    args = vars(parser.parse_args([]))
    defaults = TrainConfig()
    assert args == {
        "scheduler": defaults.scheduler,
        "warmup_ratio": defaults.warmup_ratio,
        "weight_decay": defaults.weight_decay,
        "decay_toward_start": defaults.decay_toward_start,
        "lr_factor": [],
        "max_grad_norm": defaults.max_grad_norm,
        "compile": defaults.compile,  # eager
    }
    assert {field.name for field in fields(TrainConfig)} >= set(RECIPE_FIELDS)
