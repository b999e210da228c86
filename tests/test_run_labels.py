"""Automatic run labels: the method label, then only what differs between runs of that method, then a counter."""

import pytest

from red_explorer.core.registry import MethodSpec
from red_explorer.runs.labels import (
    LabelFacts,
    auto_labels,
    label_for_new_run,
    layer_ranges,
    short_number,
    unique_label,
)


def red(learning_rate=1e-2, steps=30, **options) -> LabelFacts:
    return LabelFacts.of(MethodSpec("red", **options), learning_rate, steps)


def test_a_lone_run_is_its_method_label():
    assert auto_labels([red()]) == ["RED full (ffn)"]
    assert auto_labels([red(), LabelFacts.of(MethodSpec("lora"), 3e-4, 30)]) == ["RED full (ffn)", "LoRA r=8"]


def test_only_what_differs_within_a_method_is_named():
    labels = auto_labels([red(), red(3e-2, 60), red(), LabelFacts.of(MethodSpec("lora"), 3e-4, 5)])
    assert labels == [
        "RED full (ffn) · lr 1e-2 · 30 steps",
        "RED full (ffn) · lr 3e-2 · 60 steps",
        "RED full (ffn) · lr 1e-2 · 30 steps #2",
        "LoRA r=8",  # the LoRA run's rate and steps differ from RED's, but no other LoRA run needs telling apart
    ]


def test_variant_sites_and_a_layer_choice_are_in_the_method_label():
    labels = auto_labels([red(variant="bias"), red(sites=["attn"]), red(layers=[0, 1, 2, 5]), red()])
    assert labels == [
        "RED bias (ffn)",
        "RED full (attn)",
        "RED full (ffn) · layers 0-2,5",
        "RED full (ffn)",
    ]


def test_identical_runs_are_counted():
    assert auto_labels([red()] * 3) == ["RED full (ffn)", "RED full (ffn) #2", "RED full (ffn) #3"]


@pytest.mark.parametrize(
    "value, text", [(1e-2, "1e-2"), (3e-4, "3e-4"), (2.5e-3, "2.5e-3"), (0.5, "0.5"), (5e-5, "5e-5"), (0, "0")]
)
def test_learning_rates_are_short(value, text):
    assert short_number(value) == text


def test_layer_ranges():
    assert layer_ranges(None) == "all layers"
    assert layer_ranges([5, 0, 1, 2]) == "layers 0-2,5"
    assert layer_ranges([3]) == "layers 3"


def test_unique_label_and_a_new_run_among_existing_ones():
    assert unique_label("RED full (ffn)", ["LoRA r=8"]) == "RED full (ffn)"
    assert unique_label("RED full (ffn) #2", ["RED full (ffn) #2", "RED full (ffn) #3"]) == "RED full (ffn) #4"
    existing = [red()]
    assert label_for_new_run(red(3e-2), existing, ["RED full (ffn)"]) == "RED full (ffn) · lr 3e-2"
    assert label_for_new_run(red(), existing, ["RED full (ffn)"]) == "RED full (ffn) #2"
    assert label_for_new_run(red(), existing, ["RED full (ffn)", "RED full (ffn) #2"]) == "RED full (ffn) #3"
