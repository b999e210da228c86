"""The method card: one row per method at its best rate, its markdown table, and the figure's traces."""

import math

import pytest

from red_explorer.app.method_card_plot import LARGEST_MARKER, SMALLEST_MARKER, marker_sizes, method_card_figure
from red_explorer.choice.card import card_markdown, card_rows, markdown_table, write_card


def point(index, method, label, lr, after, **extra):
    return {
        "spec_index": index,
        "method": method,
        "label": label,
        "learning_rate": lr,
        "metric": "val_loss",
        "before": 3.0,
        "after": after,
        "trainable_parameters": extra.pop("parameters", 100),
        "seconds_per_step": extra.pop("seconds", 0.01),
        "peak_memory_bytes": 2048,
        "stopped_reason": "completed",
        "forgetting": extra.pop("forgetting", 0.01),
    } | extra


@pytest.fixture
def results():
    points = [
        point(0, "red", "RED full (ffn)", 1e-3, 2.5),
        point(0, "red", "RED full (ffn)", 1e-2, 2.1),
        point(1, "lora", "LoRA r=8", 3e-4, 2.2),
        point(1, "lora", "LoRA r=8", 3e-3, 2.4),
        point(2, "tare", "TARE E=4 k=2 (ffn)", 1e-2, 2.3),
    ]
    costs = {"saved_bytes": 3 * 1024 * 1024, "generation_overhead_attached": 1.25, "generation_overhead_merged": 1.0}
    best = [
        point(1, "lora", "LoRA r=8", 3e-4, 2.2, parameters=1792, seconds=0.04, forgetting=0.05) | costs,
        point(0, "red", "RED full (ffn)", 1e-2, 2.1, parameters=128, seconds=0.01, forgetting=-0.02) | costs,
        point(2, "tare", "TARE E=4 k=2 (ffn)", 1e-2, 2.3, parameters=768, seconds=0.02)
        | costs
        | {"generation_overhead_merged": None, "merge_note": "TARE routes each token: no fixed weights"},
    ]
    train = {"max_steps": 2, "epochs": 1.0, "batch_size": 4, "seed": 0}
    return {
        "task": "causal-lm",
        "metric": "val_loss",
        "higher_is_better": False,
        "points": points,
        "best": best,
        "config": {"train": train},
        "stopped": False,
    }


def test_card_has_one_row_per_method_at_its_best_rate(results):
    rows = card_rows(results)
    assert [(row["label"], row["learning_rate"]) for row in rows] == [
        ("RED full (ffn)", 1e-2),
        ("LoRA r=8", 3e-4),
        ("TARE E=4 k=2 (ffn)", 1e-2),
    ]


def test_card_markdown_lists_each_method_with_its_best_lr_and_costs(results):
    text = card_markdown(results)
    card = text.split("## Every learning rate")[0]
    lines = [line for line in card.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| method | best lr | val_loss before | val_loss after | trainable parameters |")
    assert lines[1:] == [
        "| RED full (ffn) | 0.01 | 3.0000 | 2.1000 | 128 | 10.0 ms | 2.0 KB | 3.0 MB | 1.25× | 1.00× | -0.0200 |",
        "| LoRA r=8 | 0.0003 | 3.0000 | 2.2000 | 1,792 | 40.0 ms | 2.0 KB | 3.0 MB | 1.25× | 1.00× | +0.0500 |",
        "| TARE E=4 k=2 (ffn) | 0.01 | 3.0000 | 2.3000 | 768 | 20.0 ms | 2.0 KB | 3.0 MB | 1.25× | — | +0.0100 |",
    ]
    every = text.split("## Every learning rate")[1]
    assert sum(line.startswith("| RED full (ffn) |") for line in every.splitlines()) == 2
    assert "- TARE E=4 k=2 (ffn): TARE routes each token" in text and "2 steps, batch 4, seed 0" in text


def test_a_value_a_row_lacks_shows_as_a_dash():
    table = markdown_table(
        [{"label": "a", "after": 1.0}, {"label": "b"}], (("label", "m", str), ("after", "x", str)), ""
    )
    assert table.splitlines()[-1] == "| b | — |"


def test_write_card_writes_results_md(results, tmp_path):
    path = write_card(results, tmp_path / "out")
    assert path.name == "results.md" and path.read_text() == card_markdown(results)


def test_figure_traces_carry_the_values(results):
    rows = card_rows(results)
    figure = method_card_figure(rows)
    assert [trace.name for trace in figure.data] == [row["label"] for row in rows]
    for trace, row in zip(figure.data, rows, strict=True):
        assert list(trace.x) == [row["trainable_parameters"]] and list(trace.y) == [row["after"]]
        learning_rate, milliseconds, forgetting = trace.customdata[0]
        assert learning_rate == row["learning_rate"] and forgetting == row["forgetting"]
        assert milliseconds == pytest.approx(row["seconds_per_step"] * 1000)
        assert "forgetting" in trace.hovertemplate
    assert figure.layout.xaxis.type == "log" and "validation loss" in figure.layout.yaxis.title.text
    sizes = [trace.marker.size for trace in figure.data]  # RED 10 ms, LoRA 40 ms (slowest), TARE 20 ms
    assert sizes[1] == LARGEST_MARKER and sizes[0] < sizes[2] < sizes[1]


def test_marker_area_grows_with_seconds_per_step():
    sizes = marker_sizes([0.01, 0.04, None])
    span = LARGEST_MARKER - SMALLEST_MARKER
    assert sizes == pytest.approx([SMALLEST_MARKER + span * math.sqrt(0.25), LARGEST_MARKER, SMALLEST_MARKER])
    assert marker_sizes([None, None]) == [SMALLEST_MARKER, SMALLEST_MARKER]
