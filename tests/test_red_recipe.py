"""Recipe comparisons: cells saved one by one and resumed, mean ± std over seeds, winners beyond seed noise."""

import json
import math

import pytest
from tiny_models import save_tiny_causal_lm

from red_explorer.choice.recipe import (
    Candidate,
    RecipeTask,
    Summary,
    cell_key,
    measure_cell,
    run_cells,
    summarise,
    winners,
)
from red_explorer.choice.recipe_card import budget_table, comparison_table
from red_explorer.core.registry import MethodSpec
from red_explorer.core.state import STATE_ATTRIBUTE
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.experiment import trained_run
from red_explorer.models.loading import load_model

TODAY, COSINE = Candidate("today"), Candidate("cosine", train={"scheduler": "cosine", "warmup_ratio": 0.1})
TASK = RecipeTask("t", {"red": 0.03, "lora": 0.009}, steps=3, batch_size=2)


def fake_run(values: dict):
    """A run_cell that returns a preset loss per (candidate, seed) and records what it was asked."""
    asked = []

    def run_cell(task, candidate, config):
        asked.append((candidate.name, config.seed, config.max_steps, config.scheduler, config.learning_rate))
        after = values[candidate.name, config.seed]
        return {"metric": "val_loss", "after": after, "method_parameters": 10, "train_seconds": 2.0}

    return run_cell, asked


def test_cells_are_saved_one_by_one_and_a_second_call_resumes(tmp_path):
    path = tmp_path / "cells.json"
    cells = [(TASK, candidate, 3, seed) for seed in (0, 1) for candidate in (TODAY, COSINE)]
    values = {("today", 0): 1.0, ("cosine", 0): 0.9, ("today", 1): 1.2, ("cosine", 1): 0.8}
    run_cell, asked = fake_run(values)

    def stop_after_two(task, candidate, config):
        if len(asked) == 2:
            raise KeyboardInterrupt
        return run_cell(task, candidate, config)

    with pytest.raises(KeyboardInterrupt):
        run_cells(cells, path, stop_after_two, log=lambda line: None)
    assert list(json.loads(path.read_text())["cells"]) == [cell_key("t", "today", 3, 0), cell_key("t", "cosine", 3, 0)]
    results = run_cells(cells, path, run_cell, log=lambda line: None)
    assert asked == [
        ("today", 0, 3, "linear", 0.03),
        ("cosine", 0, 3, "cosine", 0.03),
        ("today", 1, 3, "linear", 0.03),
        ("cosine", 1, 3, "cosine", 0.03),
    ]
    assert len(results["cells"]) == 4
    assert results["cells"][cell_key("t", "cosine", 3, 1)]["train"]["warmup_ratio"] == 0.1


def test_a_candidate_can_be_limited_to_some_tasks():
    head = Candidate("head", tasks=("rotten_tomatoes",))
    assert (head.applies_to("rotten_tomatoes"), head.applies_to("pirate"), TODAY.applies_to("pirate")) == (
        True,
        False,
        True,
    )


def test_a_task_without_a_rate_for_the_method_says_which():
    with pytest.raises(ValueError, match="task 't' has no measured rate for 'ia3'"):
        TASK.train_config(Candidate("IA3", method="ia3"), 3, 0)


def summary(values, name="b", task="t", higher=False):
    return Summary(task, name, 3, "val_accuracy" if higher else "val_loss", higher, list(values))


def test_summary_mean_and_sample_std():
    result = summary([1.0, 2.0, 3.0])
    assert (result.mean, result.std) == (2.0, 1.0)
    assert math.isnan(summary([1.0]).std)


def test_beats_needs_more_than_two_standard_errors():
    base = summary([1.0, 1.1, 0.9], "a")  # std 0.1 each: two standard errors of the difference ≈ 0.163
    assert summary([0.8, 0.9, 0.7]).beats(base)  # 0.2 lower
    assert not summary([0.9, 1.0, 0.8]).beats(base)  # 0.1 lower: noise
    assert not base.beats(summary([0.8, 0.9, 0.7]))
    assert summary([0.7, 0.8, 0.9], higher=True).beats(summary([0.5, 0.6, 0.7], "a", higher=True))
    assert not summary([0.5]).beats(base)  # one seed: no spread to judge by


def test_a_winner_beats_the_baseline_on_every_task():
    rows = [
        summary([1.0, 1.1, 0.9], "today", "x"),
        summary([0.5, 0.6, 0.4], "better", "x"),
        summary([0.5, 0.6, 0.4], "mixed", "x"),
        summary([0.6, 0.7, 0.5], "today", "y", higher=True),
        summary([0.9, 0.95, 0.85], "better", "y", higher=True),
        summary([0.6, 0.7, 0.5], "mixed", "y", higher=True),
    ]
    assert winners(rows, "today", {"x": 3, "y": 3}) == ["better"]


def test_summarise_groups_cells_and_the_tables_show_them(tmp_path):
    values = {("today", 0): 1.0, ("cosine", 0): 0.5, ("today", 1): 1.2, ("cosine", 1): 0.5, ("today", 2): 1.1}
    values[("cosine", 2)] = 0.5
    run_cell, _ = fake_run(values)
    cells = [(TASK, candidate, 3, seed) for seed in (0, 1, 2) for candidate in (TODAY, COSINE)]
    results = run_cells(cells, tmp_path / "cells.json", run_cell, log=lambda line: None)
    summaries = summarise(results)
    assert [(s.candidate, s.values) for s in summaries] == [("today", [1.0, 1.2, 1.1]), ("cosine", [0.5, 0.5, 0.5])]
    table = comparison_table(summaries, "today", {"t": 3}, ["today", "cosine"])
    assert "| today | 1.100 ± 0.100 (3) | 10 |" in table
    assert "| cosine | **0.500 ± 0.000 (3)** better | 10 |" in table
    assert "| t | cosine | 3 | val_loss | 0.500 ± 0.000 (3) | 10 | 2 s |" in budget_table(summaries, ["cosine"])


def test_measure_cell_is_a_normal_run_and_gives_the_base_back(tmp_path):
    loaded = load_model(str(save_tiny_causal_lm(tmp_path / "model")), device="cpu")
    data = prepare_data(
        "red_explorer/samples/pirate_style.jsonl", loaded.tokenizer, DataConfig(max_length=64, max_rows=16)
    )
    config = TASK.train_config(COSINE, 3, 1)
    record = measure_cell(loaded, data, COSINE, config)
    with trained_run(loaded, data, MethodSpec("red"), config) as run:
        assert record["after"] == pytest.approx(run.metrics_after["loss"], abs=1e-6)
        assert record["method_parameters"] == run.trainable_parameters
    assert record["metric"] == "val_loss" and record["stopped_reason"] == "completed"
    assert not hasattr(loaded.model, STATE_ATTRIBUTE)  # the base is bare again
