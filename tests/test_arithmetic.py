"""Edit arithmetic: compose == the edits in series, mix / negate / invert formulas, saved results load and merge."""

from __future__ import annotations

import json

import pytest
import torch
from explore_helpers import cli, random_vectors, save_random_run
from tiny_models import DECODER, logits, sample_inputs, tiny_model
from transformers import LlamaConfig, LlamaForCausalLM

from red_explorer.core.red.bank import swap_edits
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, red_vectors
from red_explorer.core.registry import load_edits, merge_and_unload
from red_explorer.core.tare.config import TareConfig
from red_explorer.core.tare.edit import attach_tare
from red_explorer.core.tare.saving import save_tare
from red_explorer.explore.arithmetic import compose, compose_runs, invert, mix, mix_runs, negate
from red_explorer.explore.runs import combinable, read_red_run
from red_explorer.explore.strength import scaled_vectors

SITES = RedConfig(sites=["ffn", "attn"])


def vectors_of(variant: str, seed: int, config: RedConfig = SITES) -> dict[str, torch.Tensor]:
    """Random RED vectors of a variant ('full', 'scale', 'bias') for the tiny llama's sites."""
    model = tiny_model("llama")
    attach_red(model, RedConfig.from_variant(variant, sites=config.sites, layers=config.layers))
    return random_vectors(model, seed)


def with_vectors(model: torch.nn.Module, vectors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """``model`` carrying exactly ``vectors`` on their modules."""
    sites = sorted({name.rpartition(".")[0] for name in vectors})
    has_scale, has_bias = any(n.endswith("scale") for n in vectors), any(n.endswith("bias") for n in vectors)
    attach_red(model, RedConfig(target_modules=sites, use_scale=has_scale, use_bias=has_bias))
    swap_edits(model, vectors)
    return model


def add_edit_after(model: torch.nn.Module, vectors: dict[str, torch.Tensor]) -> None:
    """A second RED edit in series, as plain forward hooks that run after the attached RED hooks."""
    for site in {name.rpartition(".")[0] for name in vectors}:
        scale, bias = vectors.get(f"{site}.red_scale"), vectors.get(f"{site}.red_bias")

        def hook(module, inputs, output, scale=scale, bias=bias):
            output = output * scale if scale is not None else output
            return output + bias if bias is not None else output

        model.get_submodule(site).register_forward_hook(hook)


@pytest.mark.parametrize(("first", "second"), [("full", "full"), ("bias", "full"), ("scale", "bias")])
def test_compose_equals_the_two_edits_in_series(first, second):
    vectors_a, vectors_b = vectors_of(first, seed=1), vectors_of(second, seed=2)
    series = with_vectors(tiny_model("llama"), vectors_a)
    add_edit_after(series, vectors_b)
    composed = with_vectors(tiny_model("llama"), compose(vectors_a, vectors_b))
    inputs = sample_inputs()
    assert (logits(composed, inputs) - logits(series, inputs)).abs().max() < 1e-5
    assert not torch.allclose(logits(composed, inputs), logits(with_vectors(tiny_model("llama"), vectors_a), inputs))


def test_compose_formula_by_hand():
    a = {"m.red_scale": torch.tensor([2.0, 0.5]), "m.red_bias": torch.tensor([1.0, -1.0])}
    b = {"m.red_scale": torch.tensor([3.0, 4.0]), "m.red_bias": torch.tensor([0.5, 0.25])}
    result = compose(a, b)
    assert torch.equal(result["m.red_scale"], torch.tensor([6.0, 2.0]))  # s_B ⊙ s_A
    assert torch.equal(result["m.red_bias"], torch.tensor([3.5, -3.75]))  # s_B ⊙ b_A + b_B


def test_mix_is_a_weighted_sum_of_the_changes():
    a = {"m.red_scale": torch.tensor([2.0, 0.5]), "m.red_bias": torch.tensor([1.0, -1.0])}
    b = {"m.red_scale": torch.tensor([1.5, 1.0]), "m.red_bias": torch.tensor([0.5, 0.25])}
    result = mix([a, b], [0.5, -2.0])
    assert torch.allclose(result["m.red_scale"], torch.tensor([1 + 0.5 * 1.0 - 2.0 * 0.5, 1 + 0.5 * -0.5 - 0.0]))
    assert torch.allclose(result["m.red_bias"], torch.tensor([0.5 * 1.0 - 2.0 * 0.5, 0.5 * -1.0 - 2.0 * 0.25]))
    bias_only = mix([{"m.red_bias": torch.ones(2)}, {"m.red_bias": torch.ones(2)}], [1, 1])
    assert set(bias_only) == {"m.red_bias"} and torch.equal(bias_only["m.red_bias"], torch.full((2,), 2.0))
    with pytest.raises(ValueError, match="one weight per edit"):
        mix([a, b], [1.0])


def test_negate_is_strength_minus_one_and_invert_undoes_the_edit():
    edit = vectors_of("full", seed=3)
    negated = negate(edit)
    for name, vector in edit.items():
        expected = 2 - vector if name.endswith("scale") else -vector
        assert torch.allclose(negated[name], expected) and torch.equal(negated[name], scaled_vectors(edit, -1)[name])
    undone = compose(edit, invert(edit))
    for name, vector in undone.items():
        identity = torch.ones_like(vector) if name.endswith("scale") else torch.zeros_like(vector)
        assert torch.allclose(vector, identity, atol=1e-6)
    inputs = sample_inputs()
    series = with_vectors(tiny_model("llama"), edit)
    add_edit_after(series, invert(edit))
    assert (logits(series, inputs) - logits(tiny_model("llama"), inputs)).abs().max() < 1e-5
    with pytest.raises(ValueError, match="the scale has zeros"):
        invert({"m.red_scale": torch.tensor([1.0, 0.0])})


def test_saved_composition_loads_merges_and_records_its_origin(tmp_path):
    first = save_random_run(tiny_model("llama"), tmp_path / "a", SITES, seed=1)
    second = save_random_run(tiny_model("llama"), tmp_path / "b", SITES, seed=2)
    out = compose_runs(first, second, tmp_path / "ab")
    loaded = tiny_model("llama")
    load_edits(loaded, out)
    a_model, b_model = tiny_model("llama"), tiny_model("llama")
    load_edits(a_model, first)
    load_edits(b_model, second)
    expected = compose(red_vectors(a_model), red_vectors(b_model))
    assert all(torch.allclose(vector, expected[name]) for name, vector in red_vectors(loaded).items())
    inputs = sample_inputs()
    assert (logits(merge_and_unload(loaded), inputs) - logits(loaded, inputs)).abs().max() < 1e-4
    record = json.loads((out / "red_config.json").read_text())
    assert record["derived_from"] == {"operation": "compose", "runs": [str(first), str(second)]}
    assert (
        record["red"]["variant"] == "full"
        and record["modules"] == json.loads((first / "red_config.json").read_text())["modules"]
    )


def test_mixing_bias_only_runs_stays_bias_only(tmp_path):
    config = RedConfig(use_scale=False)
    runs = [save_random_run(tiny_model("llama"), tmp_path / f"r{i}", config, seed=i) for i in range(2)]
    out = mix_runs(runs, [1.0, 1.0], tmp_path / "sum")
    assert json.loads((out / "red_config.json").read_text())["red"]["variant"] == "bias"
    model = tiny_model("llama")
    load_edits(model, out)
    assert set(red_vectors(model)) == {f"model.layers.{i}.mlp.down_proj.red_bias" for i in range(2)}


def test_incompatible_runs_are_refused_with_the_reason(tmp_path):
    llama = save_random_run(tiny_model("llama"), tmp_path / "llama", seed=1)
    gpt2 = save_random_run(tiny_model("gpt2"), tmp_path / "gpt2", seed=1)
    layer_one = save_random_run(tiny_model("llama"), tmp_path / "one", RedConfig(layers=[1]), seed=1)
    torch.manual_seed(0)
    wide = LlamaForCausalLM(LlamaConfig(**(DECODER | {"hidden_size": 48}))).eval()
    wider = save_random_run(wide, tmp_path / "wide", seed=1)
    tare = tiny_model("llama")
    attach_tare(tare, TareConfig())
    save_tare(tare, tmp_path / "tare")
    with pytest.raises(ValueError, match="on a 'gpt2' model .* only runs of the same base combine"):
        compose_runs(llama, gpt2, tmp_path / "x")
    with pytest.raises(ValueError, match="edit different modules .* same --sites and --layers"):
        mix_runs([llama, layer_one], [1, 1], tmp_path / "x")
    with pytest.raises(ValueError, match="different widths"):
        compose_runs(llama, wider, tmp_path / "x")
    with pytest.raises(ValueError, match="holds TARE edits; this works on RED runs"):
        compose_runs(llama, tmp_path / "tare", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    same = save_random_run(tiny_model("llama"), tmp_path / "same", RedConfig(use_scale=False), seed=2)
    read = {name: read_red_run(path) for name, path in [("llama", llama), ("same", same), ("one", layer_one)]}
    read |= {"gpt2": read_red_run(gpt2), "wider": read_red_run(wider)}
    assert combinable(read["llama"], read["same"])  # same sites and layers: a bias-only run mixes with a full one
    assert not any(combinable(read["llama"], read[name]) for name in ("one", "gpt2", "wider"))


def test_explore_arithmetic_commands_write_loadable_runs(tmp_path):
    first = save_random_run(tiny_model("llama"), tmp_path / "a", seed=1)
    second = save_random_run(tiny_model("llama"), tmp_path / "b", seed=2)
    out = json.loads(cli("explore", "mix", first, second, "--weights", "1,-1", "--out", tmp_path / "diff").stdout)
    model, a, b = tiny_model("llama"), tiny_model("llama"), tiny_model("llama")
    for target, directory in ((model, out["out"]), (a, first), (b, second)):
        load_edits(target, directory)
    expected = mix([red_vectors(a), red_vectors(b)], [1.0, -1.0])
    assert all(torch.allclose(vector, expected[name]) for name, vector in red_vectors(model).items())
    cli("explore", "invert", first, "--out", tmp_path / "inverse")
    inverse = tiny_model("llama")
    load_edits(inverse, tmp_path / "inverse")
    expected = invert(red_vectors(a))
    assert all(torch.allclose(vector, expected[name]) for name, vector in red_vectors(inverse).items())
    error = cli("explore", "compose", first, "--out", tmp_path / "x", check=False)
    assert error.returncode == 1 and "compose takes 2 edits directories" in error.stderr
