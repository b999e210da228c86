"""Ablations: the grid, row parsing, one row per run with exact parameter counts, the results files."""

import csv
import json

import pytest
from tiny_models import save_tiny_causal_lm

from red_explorer.core.registry import MethodSpec
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.ablation import ablation_grid, parse_row, run_ablation, write_results
from red_explorer.models.loading import load_model


def test_default_grid_is_the_papers_tables_plus_lora():
    grid = ablation_grid()
    assert len(grid) == 10 and grid[-1].method == "lora"
    assert {(spec.variant, "+".join(spec.sites)) for spec in grid[:-1]} == {
        (variant, sites) for variant in ("full", "scale", "bias") for sites in ("ffn", "attn", "ffn+attn")
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        ("red:bias:ffn+attn", MethodSpec("red", variant="bias", sites=["ffn", "attn"])),
        ("lora:16", MethodSpec("lora", rank=16)),
        ("tare:attn", MethodSpec("tare", sites=["attn"])),
        ("full", MethodSpec("full")),
    ],
)
def test_parse_row(text, expected):
    assert parse_row(text) == expected


def test_parse_row_rejects_nonsense():
    with pytest.raises(ValueError, match="cannot read ablation row"):
        parse_row("red:sideways:ffn")


def test_two_row_ablation_table(tmp_path):
    loaded = load_model(str(save_tiny_causal_lm(tmp_path / "model")), device="cpu")
    data = prepare_data(
        "red_explorer/samples/restaurants_e2e.csv", loaded.tokenizer, DataConfig(max_length=256, max_rows=40)
    )
    specs = [parse_row("red:full:ffn"), parse_row("red:scale:ffn+attn"), parse_row("lora")]
    progress = []
    rows = run_ablation(
        loaded, data, specs, {"max_steps": 3, "batch_size": 8}, on_progress=lambda i, n, event: progress.append((i, n))
    )
    hidden, layers = 32, 2
    assert [row["trainable_parameters"] for row in rows[:2]] == [2 * hidden * layers, 1 * hidden * 2 * layers]
    rank, q_out, v_out = 8, 32, 16  # LoRA A (r x in) + B (out x r) on q_proj and v_proj (2 KV heads of 8)
    assert rows[2]["trainable_parameters"] == layers * rank * ((hidden + q_out) + (hidden + v_out))
    assert all(row["metric"] == "val_loss" and row["after"] < row["before"] for row in rows[:2])
    assert rows[0]["before"] == pytest.approx(rows[1]["before"])  # identity edits: same starting point
    assert {index for index, _ in progress} == {0, 1, 2}
    write_results(rows, tmp_path / "out")
    with open(tmp_path / "out" / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [row["label"] for row in table] == ["RED full (ffn)", "RED scale (ffn+attn)", "LoRA r=8"]
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == rows
