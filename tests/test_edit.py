"""The RED edit itself: identity at init, exact formula, disable, detach, parameter count."""

import pytest
import torch
from tiny_models import ARCHITECTURES, logits, sample_inputs, tiny_model

from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import (
    attach_red,
    detach_red,
    red_disabled,
    red_parameter_count,
    red_vectors,
    trainable_parameter_count,
)
from red_explorer.core.sites import find_sites, output_size

SITE_CHOICES = [["ffn"], ["attn"], ["ffn", "attn"]]
VARIANTS = ["full", "scale", "bias"]


def randomize(model, seed=3):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, vector in red_vectors(model).items():
            noise = torch.randn(vector.shape, generator=generator) * 0.5
            vector.copy_(noise + (1.0 if name.endswith("red_scale") else 0.0))


def hand_edited_logits(base, vectors, input_ids):
    """The expected output: scale * h + bias applied through plain forward hooks on the base model."""
    handles = []
    for module_name in {name.rsplit(".", 1)[0] for name in vectors}:
        scale = vectors.get(f"{module_name}.red_scale")
        bias = vectors.get(f"{module_name}.red_bias")

        def hook(module, inputs, output, scale=scale, bias=bias):
            output = output * scale if scale is not None else output
            return output + bias if bias is not None else output

        handles.append(base.get_submodule(module_name).register_forward_hook(hook))
    try:
        return logits(base, input_ids)
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("sites", SITE_CHOICES, ids="+".join)
def test_untouched_edit_equals_base_exactly(architecture, sites):
    model, input_ids = tiny_model(architecture), sample_inputs()
    expected = logits(model, input_ids)
    attach_red(model, RedConfig(sites=sites))
    assert torch.equal(logits(model, input_ids), expected)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_edited_logits_equal_hand_computation(architecture, variant):
    model, base, input_ids = tiny_model(architecture), tiny_model(architecture), sample_inputs()
    attach_red(model, RedConfig.from_variant(variant, sites=["ffn", "attn"]))
    randomize(model)
    vectors = {name: vector.detach().clone() for name, vector in red_vectors(model).items()}
    edited = logits(model, input_ids)
    assert (edited - logits(base, input_ids)).abs().max() > 1e-6  # the edit changes the output
    torch.testing.assert_close(edited, hand_edited_logits(base, vectors, input_ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_disabled_and_detached_equal_base(architecture):
    model, input_ids = tiny_model(architecture), sample_inputs()
    expected = logits(model, input_ids)
    attach_red(model, RedConfig(sites=["ffn", "attn"]))
    randomize(model)
    with red_disabled(model):
        assert torch.equal(logits(model, input_ids), expected)
    assert (logits(model, input_ids) - expected).abs().max() > 1e-6
    detach_red(model)
    assert torch.equal(logits(model, input_ids), expected)
    assert not any("red_" in name for name in model.state_dict())
    assert not hasattr(model, "_red_state")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("sites", SITE_CHOICES, ids="+".join)
def test_parameter_count_is_exact(architecture, variant, sites):
    model = tiny_model(architecture)
    config = RedConfig.from_variant(variant, sites=sites)
    attached = attach_red(model, config)
    hidden = model.config.hidden_size if hasattr(model.config, "hidden_size") else model.config.n_embd
    vectors_per_site = 2 if variant == "full" else 1
    assert len(attached) == 2 * len(sites)  # two layers
    assert red_parameter_count(model) == vectors_per_site * hidden * len(attached)
    assert trainable_parameter_count(model) == red_parameter_count(model)


def test_layer_subset_and_names():
    model = tiny_model("llama")
    sites = attach_red(model, RedConfig(layers=[1]))
    assert [site.name for site in sites] == ["model.layers.1.mlp.down_proj"]
    assert set(red_vectors(model)) == {
        "model.layers.1.mlp.down_proj.red_scale",
        "model.layers.1.mlp.down_proj.red_bias",
    }


def test_override_by_pattern_and_by_names():
    model = tiny_model("llama")
    by_pattern = find_sites(model, RedConfig(target_modules=r"model\.layers\.\d+\.mlp\.up_proj"))
    assert [site.name for site in by_pattern] == ["model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj"]
    assert [site.layer_index for site in by_pattern] == [0, 1]
    by_names = find_sites(model, RedConfig(target_modules=["model.layers.0.mlp.gate_proj"]))
    assert output_size(model.get_submodule(by_names[0].name)) == 64
    with pytest.raises(ValueError, match="do not exist"):
        find_sites(model, RedConfig(target_modules=["model.layers.9.mlp"]))


def test_unknown_architecture_names_the_override():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="target_modules"):
        attach_red(model, RedConfig())


def test_config_validation():
    with pytest.raises(ValueError, match="at least one vector"):
        RedConfig(use_scale=False, use_bias=False)
    with pytest.raises(ValueError, match="sites"):
        RedConfig(sites=["mlp"])
    assert RedConfig(sites="ffn,attn").sites == ["ffn", "attn"]
    assert RedConfig.from_dict(RedConfig.from_variant("bias").to_dict()).variant == "bias"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_keep_fp32_vectors(dtype):
    model, input_ids = tiny_model("llama").to(dtype), sample_inputs()
    expected = logits(model, input_ids)
    attach_red(model)
    assert all(vector.dtype == torch.float32 for vector in red_vectors(model).values())
    assert torch.equal(logits(model, input_ids), expected)
    randomize(model)
    edited = logits(model, input_ids)
    assert edited.dtype == dtype and torch.isfinite(edited).all()


def test_gradients_reach_only_the_vectors():
    model, input_ids = tiny_model("llama"), sample_inputs()
    attach_red(model)
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert set(grads) == set(red_vectors(model)) and all(g.abs().sum() > 0 for g in grads.values())


def test_attaching_twice_is_refused():
    model = tiny_model("gpt2")
    attach_red(model)
    with pytest.raises(ValueError, match="already carries"):
        attach_red(model)


def test_device_map_loaded_model(tmp_path):
    """A model placed by accelerate's device_map; RED's vectors go where each edited module computes."""
    from transformers import AutoModelForCausalLM

    tiny_model("llama").save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, device_map={"": "cpu"}).eval()
    base, input_ids = tiny_model("llama"), sample_inputs()
    expected = logits(model, input_ids)
    attach_red(model)
    assert torch.equal(logits(model, input_ids), expected)
    randomize(model)
    vectors = {name: vector.detach().clone() for name, vector in red_vectors(model).items()}
    torch.testing.assert_close(logits(model, input_ids), hand_edited_logits(base, vectors, input_ids))


def test_offloaded_weights_are_refused_clearly():
    from accelerate import cpu_offload

    model = tiny_model("llama")
    cpu_offload(model, execution_device="cpu")
    with pytest.raises(ValueError, match="offloaded by accelerate"):
        attach_red(model)


def test_engine_imports_without_ui_or_data_packages():
    """The library core and training engine run where only torch/transformers/peft exist (a GPU box)."""
    import subprocess
    import sys

    code = (
        "import sys; import red_explorer, red_explorer.engine.experiment, red_explorer.core.registry, "
        "red_explorer.engine.training, red_explorer.engine.generation, red_explorer.engine.ablation, "
        "red_explorer.cli.main, red_explorer.core.tare.edit; "
        "print(sorted(m for m in ('gradio', 'plotly', 'datasets') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
