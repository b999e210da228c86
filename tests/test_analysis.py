"""Edit analysis: per-layer magnitudes, matrices and top dimensions equal hand computations; TARE tables."""

import numpy as np
import pytest
import torch
from test_edit import randomize
from tiny_models import sample_inputs, tiny_model

from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, red_vectors
from red_explorer.core.registry import save_edits
from red_explorer.core.tare.edit import TareConfig, attach_tare
from red_explorer.core.tare.routing import editor_magnitudes, tare_routing
from red_explorer.engine.analysis import (
    edit_matrix,
    edit_summary,
    edit_values,
    editor_table,
    layer_magnitudes,
    routing_table,
    site_edits,
    site_kind,
    top_dimensions,
    vectors_from_directory,
)


def edited(variant="full", sites=("ffn", "attn"), architecture="llama"):
    model = tiny_model(architecture)
    attach_red(model, RedConfig.from_variant(variant, sites=list(sites)))
    randomize(model)
    return model, {name: vector.detach().clone() for name, vector in red_vectors(model).items()}


def test_sites_are_grouped_in_layer_order_with_kinds():
    _, vectors = edited()
    edits = site_edits(vectors)
    assert [edit.label for edit in edits] == ["L0 ffn", "L0 attn", "L1 ffn", "L1 attn"]
    assert edits[0].module == "model.layers.0.mlp.down_proj"
    assert np.array_equal(edits[0].scale, vectors["model.layers.0.mlp.down_proj.red_scale"].numpy())
    assert np.array_equal(edits[3].bias, vectors["model.layers.1.self_attn.o_proj.red_bias"].numpy())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("transformer.h.3.mlp.c_proj", ("ffn", 3)),
        ("transformer.h.0.attn.c_proj", ("attn", 0)),
        ("roberta.encoder.layer.11.output.dense", ("ffn", 11)),
        ("roberta.encoder.layer.2.attention.output.dense", ("attn", 2)),
        ("model.layers.5.mlp.up_proj", ("custom", 5)),
    ],
)
def test_site_kind_knows_the_families(name, expected):
    assert site_kind(name) == expected


def test_layer_magnitudes_are_mean_absolute_deviations():
    _, vectors = edited()
    magnitudes = {item.kind: item for item in layer_magnitudes(site_edits(vectors))}
    assert list(magnitudes) == ["ffn", "attn"]
    for layer in (0, 1):
        scale = vectors[f"model.layers.{layer}.mlp.down_proj.red_scale"]
        bias = vectors[f"model.layers.{layer}.self_attn.o_proj.red_bias"]
        assert magnitudes["ffn"].scale[layer] == pytest.approx((scale - 1).abs().mean().item(), rel=1e-6)
        assert magnitudes["attn"].bias[layer] == pytest.approx(bias.abs().mean().item(), rel=1e-6)
    assert magnitudes["ffn"].layers == [0, 1]


def test_matrices_are_signed_and_rows_follow_the_sites():
    _, vectors = edited()
    edits = site_edits(vectors)
    labels, scale = edit_matrix(edits, "scale")
    _, bias = edit_matrix(edits, "bias")
    assert labels == ["L0 ffn", "L0 attn", "L1 ffn", "L1 attn"] and scale.shape == (4, 32)
    np.testing.assert_allclose(scale[2], vectors["model.layers.1.mlp.down_proj.red_scale"].numpy() - 1)
    np.testing.assert_allclose(bias[1], vectors["model.layers.0.self_attn.o_proj.red_bias"].numpy())
    with pytest.raises(ValueError, match="vector must be"):
        edit_matrix(edits, "weight")


def test_top_dimensions_match_brute_force():
    _, vectors = edited()
    edits = site_edits(vectors)
    every = []
    for edit in edits:
        for dimension in range(32):
            score = abs(edit.scale[dimension] - 1) + abs(edit.bias[dimension])
            every.append((score, edit.layer_index, edit.kind, dimension))
    expected = sorted(every, reverse=True)[:5]
    top = top_dimensions(edits, k=5)
    assert [(item.layer_index, item.kind, item.dimension) for item in top] == [e[1:] for e in expected]
    assert [item.score for item in top] == pytest.approx([e[0] for e in expected], rel=1e-6)
    first = top[0]
    site = next(edit for edit in edits if (edit.layer_index, edit.kind) == (first.layer_index, first.kind))
    assert (first.scale, first.bias) == pytest.approx((site.scale[first.dimension], site.bias[first.dimension]))


def test_variants_without_a_vector_hold_the_identity():
    _, vectors = edited("bias", sites=("ffn",))
    edits = site_edits(vectors)
    assert all(not edit.has_scale and edit.has_bias for edit in edits)
    assert all(np.array_equal(edit.scale, np.ones(32)) for edit in edits)
    assert list(edit_values(edits)) == ["bias"]
    assert layer_magnitudes(edits)[0].scale == [0.0, 0.0]
    assert edit_summary(edits)["parameters"] == 2 * 32  # one vector per site, two sites


def test_summary_and_values_cover_every_learned_number():
    _, vectors = edited(sites=("ffn",))
    edits = site_edits(vectors)
    values = edit_values(edits)
    assert values["scale − 1"].shape == (64,) and values["bias"].shape == (64,)
    summary = edit_summary(edits)
    scales = torch.cat([vectors[name] for name in sorted(vectors) if name.endswith("red_scale")])
    assert summary["parameters"] == 128 and summary["sites"] == 2
    assert summary["max_abs_scale_minus_1"] == pytest.approx((scales - 1).abs().max().item(), rel=1e-6)


def test_vectors_from_a_saved_directory_equal_the_model(tmp_path):
    model, vectors = edited()
    save_edits(model, tmp_path / "edits", "tiny")
    loaded = vectors_from_directory(tmp_path / "edits")
    assert set(loaded) == set(vectors)
    assert all(torch.equal(loaded[name], vectors[name]) for name in vectors)


def test_no_vectors_is_an_error():
    with pytest.raises(ValueError, match="no RED vectors"):
        site_edits({"model.layers.0.mlp.down_proj.weight": torch.zeros(2)})


def test_tare_tables_follow_the_routing():
    model = tiny_model("llama")
    attach_tare(model, TareConfig(num_editors=3, top_k=2))
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if "tare_" in name:
                tensor.add_(torch.randn(tensor.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    input_ids = sample_inputs(batch=1, length=6)
    routing = tare_routing(model, input_ids)
    table = routing_table(routing, [f"t{i}" for i in range(6)])
    assert table.site_labels == ["L0 ffn", "L1 ffn"]
    assert np.array_equal(table.top_editor, routing.selected[:, :, 0].numpy())
    assert table.usage.shape == (2, 3) and np.allclose(table.usage.sum(axis=1), 2.0)
    magnitudes = editor_table(editor_magnitudes(model))
    raw = editor_magnitudes(model)["model.layers.1.mlp.down_proj"]
    assert np.allclose(magnitudes.scale[1], raw["scale"].numpy()) and magnitudes.bias.shape == (2, 3)
    with pytest.raises(ValueError, match="tokens"):
        routing_table(routing, ["only", "two"])
