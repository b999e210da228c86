"""An edit at strength α: 0 is the base and 1 the run exactly, the change scales with α, dose-response records."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from explore_helpers import SAMPLE, batches, cli, save_random_run, with_random_red
from tiny_models import logits, sample_inputs, save_tiny_causal_lm, tiny_model

from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import red_disabled, red_vectors
from red_explorer.core.tare.config import TareConfig
from red_explorer.core.tare.edit import BIAS as TARE_BIAS
from red_explorer.core.tare.edit import SCALE as TARE_SCALE
from red_explorer.core.tare.edit import attach_tare, tare_disabled, tare_parameters
from red_explorer.core.tare.routing import tare_routing
from red_explorer.engine.evaluation import evaluate
from red_explorer.explore.strength import at_strength, dose_response, scaled_vectors
from red_explorer.models.loading import load_model


def site_output(model, site: str, inputs: torch.Tensor) -> torch.Tensor:
    """The (edited) output of module ``site`` in one forward pass."""
    captured = {}
    handle = model.get_submodule(site).register_forward_hook(lambda m, i, o: captured.setdefault("out", o.detach()))
    try:
        logits(model, inputs)
    finally:
        handle.remove()
    return captured["out"]


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_strength_zero_is_the_base_and_one_is_the_run_exactly(architecture):
    model = with_random_red(tiny_model(architecture), RedConfig(sites=["ffn", "attn"]))
    inputs = sample_inputs()
    with red_disabled(model):
        base = logits(model, inputs)
    run = logits(model, inputs)
    before = {name: vector.detach().clone() for name, vector in red_vectors(model).items()}
    with at_strength(model, 0):
        assert torch.equal(logits(model, inputs), base)
    with at_strength(model, 1):
        assert torch.equal(logits(model, inputs), run)
    with at_strength(model, 2.5):
        assert not torch.allclose(logits(model, inputs), run)
    assert all(torch.equal(before[name], vector) for name, vector in red_vectors(model).items())  # restored


def test_scaled_vectors_follow_the_formula():
    vectors = {"m.red_scale": torch.tensor([1.5, 0.5, 1.0]), "m.red_bias": torch.tensor([0.2, -0.4, 0.0])}
    for strength in (-1.0, 0.5, 2.0, 3.0):
        scaled = scaled_vectors(vectors, strength)
        assert torch.allclose(scaled["m.red_scale"], 1 + strength * (vectors["m.red_scale"] - 1))
        assert torch.allclose(scaled["m.red_bias"], strength * vectors["m.red_bias"])
    with pytest.raises(ValueError, match="not a RED vector name"):
        scaled_vectors({"m.weight": torch.ones(3)}, 2.0)
    with pytest.raises(ValueError, match="finite number"):
        scaled_vectors(vectors, float("nan"))


def test_the_change_of_every_site_output_scales_with_strength():
    """RED_α(h) = h + α (RED(h) − h) at the first edited site, whose input no edit touches."""
    model = with_random_red(tiny_model("llama"))
    site, inputs = "model.layers.0.mlp.down_proj", sample_inputs()
    with at_strength(model, 0):
        base = site_output(model, site, inputs)
    change = site_output(model, site, inputs) - base
    for strength in (-1.0, 2.0):
        with at_strength(model, strength):
            assert torch.allclose(site_output(model, site, inputs) - base, strength * change, atol=1e-5)


def test_tare_strength_keeps_the_routing_and_scales_the_edit():
    torch.manual_seed(0)
    model = tiny_model("llama")
    attach_tare(model, TareConfig(num_editors=3, top_k=2))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in tare_parameters(model).items():
            if name.endswith((TARE_SCALE, TARE_BIAS)):
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)
    inputs, site = sample_inputs(), "model.layers.0.mlp.down_proj"
    with tare_disabled(model):
        base, base_site = logits(model, inputs), site_output(model, site, inputs)
    run, change = logits(model, inputs), site_output(model, site, inputs) - base_site
    routing = tare_routing(model, inputs).selected
    with at_strength(model, 0):
        assert torch.equal(logits(model, inputs), base)
    with at_strength(model, 1):
        assert torch.equal(logits(model, inputs), run)
    with at_strength(model, 2.0):
        assert torch.allclose(site_output(model, site, inputs) - base_site, 2.0 * change, atol=1e-5)
        assert torch.equal(tare_routing(model, inputs).selected[0], routing[0])  # layer 0 sees the same inputs


def test_lora_strength_scales_peft_scaling_and_restores_it():
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    torch.manual_seed(0)
    model = get_peft_model(tiny_model("llama"), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    inputs = sample_inputs()
    with model.disable_adapter():
        base = logits(model, inputs)
    run = logits(model, inputs)
    layer = next(module for module in model.modules() if isinstance(module, LoraLayer))
    with at_strength(model, 0):
        assert torch.allclose(logits(model, inputs), base, atol=1e-6)
    with at_strength(model, 3):
        assert layer.scaling["default"] == pytest.approx(3 * 8 / 4)
    assert layer.scaling["default"] == pytest.approx(8 / 4)
    with at_strength(model, 1):
        assert torch.equal(logits(model, inputs), run)


def test_a_plain_model_and_dora_have_no_strength():
    from peft import LoraConfig, get_peft_model

    with pytest.raises(ValueError, match="full fine-tuning has no strength: strengths apply to red, tare, lora"):
        at_strength(tiny_model("llama"), 0.5)
    dora = get_peft_model(tiny_model("llama"), LoraConfig(r=2, target_modules=["q_proj"], use_dora=True))
    with pytest.raises(ValueError, match="DoRA has no strength"), at_strength(dora, 0.5):
        pass


def test_dose_response_records_loss_and_kl_from_the_base():
    model = with_random_red(tiny_model("llama"))
    data = batches()
    points = dose_response(model, data, strengths=[0.0, 1.0, 2.0])
    assert [point.strength for point in points] == [0.0, 1.0, 2.0]
    with red_disabled(model):
        assert points[0].loss == pytest.approx(evaluate(model, data, "causal-lm")["loss"], abs=1e-6)
    assert points[1].loss == pytest.approx(evaluate(model, data, "causal-lm")["loss"], abs=1e-6)
    assert points[0].kl_from_base == 0.0
    assert 0 < points[1].kl_from_base < points[2].kl_from_base
    # KL at strength 1 by hand: mean over unmasked tokens of Σ p_e (log p_e − log p_b)
    total, count = 0.0, 0
    for batch in data:
        with red_disabled(model):
            base = logits(model, batch["input_ids"]).double().log_softmax(-1)
        edited = logits(model, batch["input_ids"]).double().log_softmax(-1)
        kl = (edited.exp() * (edited - base)).sum(-1)
        total, count = (
            total + float(kl[batch["attention_mask"].bool()].sum()),
            count + int(batch["attention_mask"].sum()),
        )
    assert points[1].kl_from_base == pytest.approx(total / count, rel=1e-4)
    assert points[1].to_dict() == {"strength": 1.0, "loss": points[1].loss, "kl_from_base": points[1].kl_from_base}


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A tiny model folder and a random RED run saved for it."""
    folder = tmp_path_factory.mktemp("strength")
    model_dir = save_tiny_causal_lm(folder / "model")
    return model_dir, save_random_run(load_model(str(model_dir), device="cpu").model, folder / "run", seed=4)


def test_generate_applies_every_run_at_the_strength(saved_run):
    model_dir, run = saved_run
    common = ("generate", "--model", model_dir, "--edits", run, "--prompt", "name[aromi]", "--max-new-tokens", 6)
    rows = json.loads(cli(*common, "--strength", 0, "--json").stdout)
    assert rows[1]["method"] == f"RED full (ffn) at strength 0 [{run}]"
    assert rows[1]["text"] == rows[0]["text"]  # strength 0 generates as the base
    assert json.loads(cli(*common, "--json").stdout)[1]["method"] == f"RED full (ffn) [{run}]"


def test_explore_dose_response_prints_the_records(saved_run):
    model_dir, run = saved_run
    data = ("--data", SAMPLE, "--max-rows", 20, "--strengths=-1,0,1")
    points = json.loads(cli("explore", "dose-response", "--model", model_dir, "--edits", run, *data).stdout)
    assert [point["strength"] for point in points] == [-1.0, 0.0, 1.0]
    assert points[1]["kl_from_base"] == 0.0 < points[2]["kl_from_base"] and points[0]["loss"] != points[2]["loss"]


def test_dose_response_does_not_touch_a_copy():
    model = with_random_red(tiny_model("llama"))
    before = copy.deepcopy(red_vectors(model))
    dose_response(model, batches(count=1), strengths=[-1.0, 3.0])
    assert all(torch.equal(before[name], vector) for name, vector in red_vectors(model).items())


def test_dose_response_tells_each_forward_pass_per_batch():
    model, data, heard = with_random_red(tiny_model("llama")), batches(count=2), []
    points = dose_response(model, data, strengths=[0.0, 1.0], on_progress=lambda *call: heard.append(call))
    assert points == dose_response(model, data, strengths=[0.0, 1.0])  # the same points, heard or not
    passes = [
        f"batch {number} of 2 · {what}"
        for number in (1, 2)
        for what in ("the base", "α = 0 (1 of 2)", "α = 1 (2 of 2)")
    ]
    assert heard == [(done, 6, what) for done, what in enumerate(passes)] + [(6, 6, "done")]
