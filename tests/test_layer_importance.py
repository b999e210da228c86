"""Which layers matter: layer selections, leave-one-out and keep-one losses, train --layers and explore layers."""

from __future__ import annotations

import json

import pytest
import torch
from explore_helpers import SAMPLE, batches, cli, save_random_run, with_random_red
from tiny_models import DECODER, save_tiny_causal_lm
from transformers import LlamaConfig, LlamaForCausalLM

from red_explorer.core.red.bank import swap_edits
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import red_disabled, red_vectors
from red_explorer.engine.evaluation import evaluate
from red_explorer.explore.layers import layer_importance, parse_layers, reset_sites
from red_explorer.models.loading import load_model


def identity(name: str, vector: torch.Tensor) -> torch.Tensor:
    """The identity value of one RED vector: ones for a scale, zeros for a bias."""
    return torch.ones_like(vector) if name.endswith("red_scale") else torch.zeros_like(vector)


def three_layer_llama() -> torch.nn.Module:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**(DECODER | {"num_hidden_layers": 3}))).eval()


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [
        ("1,2,5-9", 12, [1, 2, 5, 6, 7, 8, 9]),
        ("first:4", 12, [0, 1, 2, 3]),
        ("last:4", 12, [8, 9, 10, 11]),
        ("first:2, last:2, 5", 12, [0, 1, 5, 10, 11]),
        ("3,3,1", None, [1, 3]),
    ],
)
def test_parse_layers_reads_lists_ranges_and_first_last(text, count, expected):
    assert parse_layers(text, count) == expected


@pytest.mark.parametrize(
    ("text", "count", "message"),
    [
        ("last:4", None, "needs the model's layer count"),
        ("9-5", 12, "a range runs upwards, e.g. 5-9"),
        ("top third", 12, "cannot read layers 'top third'"),
        ("1,12", 12, "layer 12 does not exist: the model has 12 layers"),
        ("last:13", 12, "the model has only 12 layers"),
        ("first:0", 12, "at least 1"),
        (" , ", 12, "no layers given"),
    ],
)
def test_parse_layers_refuses_with_the_fix(text, count, message):
    with pytest.raises(ValueError, match=message):
        parse_layers(text, count)


def test_reset_sites_puts_the_identity_back_on_those_sites_only():
    vectors = {"a.red_scale": torch.full((3,), 2.0), "a.red_bias": torch.ones(3), "b.red_bias": torch.ones(3)}
    reset = reset_sites(vectors, ["a"])
    assert torch.equal(reset["a.red_scale"], torch.ones(3)) and torch.equal(reset["a.red_bias"], torch.zeros(3))
    assert torch.equal(reset["b.red_bias"], torch.ones(3)) and torch.equal(vectors["a.red_bias"], torch.ones(3))


def test_leave_one_out_equals_the_run_with_that_layer_reset():
    model = with_random_red(three_layer_llama(), RedConfig(sites=["ffn", "attn"]), seed=2)
    data = batches()
    original = {name: vector.detach().clone() for name, vector in red_vectors(model).items()}
    report = layer_importance(model, data)
    assert [effect.layer_index for effect in report.layers] == [0, 1, 2]
    assert all(torch.equal(original[name], vector) for name, vector in red_vectors(model).items())  # restored
    with red_disabled(model):
        assert report.base_loss == pytest.approx(evaluate(model, data, "causal-lm")["loss"], abs=1e-7)
    assert report.run_loss == pytest.approx(evaluate(model, data, "causal-lm")["loss"], abs=1e-7)
    effect = report.layers[1]
    assert effect.sites == ["model.layers.1.self_attn.o_proj", "model.layers.1.mlp.down_proj"]
    without = {name: identity(name, v) if ".layers.1." in name else v for name, v in original.items()}
    swap_edits(model, without)
    assert effect.loss_without == pytest.approx(evaluate(model, data, "causal-lm")["loss"], abs=1e-7)
    only = {name: v if ".layers.1." in name else identity(name, v) for name, v in original.items()}
    swap_edits(model, only)
    assert effect.loss_only == pytest.approx(evaluate(model, data, "causal-lm")["loss"], abs=1e-7)
    assert effect.cost_of_removing == pytest.approx(effect.loss_without - report.run_loss)
    assert effect.gain_alone == pytest.approx(report.base_loss - effect.loss_only)
    assert report.records()[1]["layer_index"] == 1 and set(report.to_dict()) == {"base_loss", "run_loss", "layers"}


def test_train_layers_reads_last_and_explore_layers_reports_each(tmp_path):
    model_dir = save_tiny_causal_lm(tmp_path / "model")
    out = tmp_path / "run"
    common = ("--model", model_dir, "--data", SAMPLE, "--max-rows", 20)
    cli("train", *common, "--max-steps", 1, "--layers", "last:1", "--out", out)
    assert json.loads((out / "red_config.json").read_text())["layers"] == [1]
    run = save_random_run(load_model(str(model_dir), device="cpu").model, tmp_path / "both", seed=1)
    report = json.loads(cli("explore", "layers", *common, "--edits", run).stdout)
    assert [row["layer_index"] for row in report["layers"]] == [0, 1]
    assert report["layers"][0]["loss_without"] != report["run_loss"]


def test_layer_importance_tells_each_of_its_two_plus_two_per_layer_evaluations():
    model = with_random_red(three_layer_llama(), RedConfig(sites=["ffn", "attn"]), seed=2)
    data, heard = batches(), []
    report = layer_importance(model, data, on_progress=lambda *call: heard.append(call))
    assert report == layer_importance(model, data)  # the same losses, heard or not
    layers = [f"layer {index} ({index + 1} of 3) · {kind}" for index in range(3) for kind in ("leave out", "keep only")]
    assert heard == [(done, 8, what) for done, what in enumerate(["the base model", "the whole run", *layers])] + [
        (8, 8, "done")
    ]
