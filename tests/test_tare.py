"""TARE: identity at init, exact routing formula, top-k, disable/detach, count, training, merge."""

import json

import pytest
import torch
from tiny_models import ARCHITECTURES, logits, sample_inputs, tiny_model

from red_explorer import merge_and_unload
from red_explorer.core.method import MergeError
from red_explorer.core.red.edit import attach_red, trainable_parameter_count
from red_explorer.core.tare.edit import (
    TareConfig,
    attach_tare,
    detach_tare,
    has_tare,
    tare_disabled,
    tare_parameter_count,
    tare_parameters,
)
from red_explorer.core.tare.routing import editor_magnitudes, tare_routing

SITE_CHOICES = [["ffn"], ["attn"], ["ffn", "attn"]]
HIDDEN = 32


def randomize(model, seed=3):
    """Editors and selectors far from the identity, so that every editor and the routing matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in tare_parameters(model).items():
            noise = torch.randn(tensor.shape, generator=generator) * 0.5
            tensor.copy_(noise + (1.0 if name.endswith("tare_scale") else 0.0))


def hand_tare(output, scale, bias, selector, top_k):
    """h + Σ_j p_j ((scale_j − 1) ⊙ h + bias_j) over the k most probable editors, p = softmax over all E."""
    rows = []
    for hidden in output.reshape(-1, output.shape[-1]):
        scores = torch.tensor([torch.dot(hidden, row).item() for row in selector])
        probabilities = torch.exp(scores - scores.max())
        probabilities = probabilities / probabilities.sum()
        chosen = sorted(range(len(scores)), key=lambda editor: scores[editor].item(), reverse=True)[:top_k]
        change = sum(probabilities[e] * ((scale[e] - 1) * hidden + bias[e]) for e in chosen)
        rows.append(hidden + change)
    return torch.stack(rows).reshape(output.shape)


def hand_edited_logits(base, tensors, top_k, input_ids):
    """The expected output: TARE computed by hand in plain forward hooks on the base model."""
    handles = []
    for module_name in {name.rsplit(".", 1)[0] for name in tensors}:
        scale, bias, selector = (
            tensors[f"{module_name}.{kind}"] for kind in ("tare_scale", "tare_bias", "tare_selector")
        )

        def hook(module, inputs, output, scale=scale, bias=bias, selector=selector):
            return hand_tare(output, scale, bias, selector, top_k)

        handles.append(base.get_submodule(module_name).register_forward_hook(hook))
    try:
        return logits(base, input_ids)
    finally:
        for handle in handles:
            handle.remove()


def frozen_copy(model):
    return {name: tensor.detach().clone() for name, tensor in tare_parameters(model).items()}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("sites", SITE_CHOICES, ids="+".join)
def test_untouched_tare_equals_base_exactly(architecture, sites):
    model, input_ids = tiny_model(architecture), sample_inputs()
    expected = logits(model, input_ids)
    attach_tare(model, TareConfig(sites=sites))
    assert torch.equal(logits(model, input_ids), expected)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_edited_logits_equal_hand_computation(architecture, top_k):
    model, base, input_ids = tiny_model(architecture), tiny_model(architecture), sample_inputs()
    attach_tare(model, TareConfig(num_editors=4, top_k=top_k, sites=["ffn", "attn"]))
    randomize(model)
    edited = logits(model, input_ids)
    assert (edited - logits(base, input_ids)).abs().max() > 1e-3  # the edit changes the output
    expected = hand_edited_logits(base, frozen_copy(model), top_k, input_ids)
    torch.testing.assert_close(edited, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_token_mixes_exactly_k_editors(architecture):
    model, input_ids = tiny_model(architecture), sample_inputs()
    sites = attach_tare(model, TareConfig(num_editors=5, top_k=3, sites=["ffn", "attn"]))
    randomize(model)
    routing = tare_routing(model, input_ids)
    assert routing.site_names == [site.name for site in sites]
    assert routing.layer_indices == [site.layer_index for site in sites]
    assert routing.selected.shape == routing.weights.shape == (len(sites), input_ids.shape[1], 3)
    assert all(len(set(token.tolist())) == 3 for token in routing.selected.reshape(-1, 3))
    assert (routing.weights > 0).all() and (routing.weights[..., :-1] >= routing.weights[..., 1:]).all()
    assert (routing.weights.sum(-1) < 1).all()  # probabilities over all 5 editors, 3 of them chosen
    torch.testing.assert_close(routing.usage.sum(-1), torch.full((len(sites),), 3.0))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_unselected_editors_do_not_contribute(architecture):
    model, input_ids = tiny_model(architecture), sample_inputs()
    attach_tare(model, TareConfig(num_editors=8, top_k=1, sites=["ffn", "attn"]))
    randomize(model)
    expected = logits(model, input_ids)
    routing = tare_routing(model, input_ids)
    unused = routing.usage == 0  # (sites, E)
    assert unused.any(), "precondition: some editor is never chosen on this input"
    parameters = tare_parameters(model)
    with torch.no_grad():
        for row, site_name in enumerate(routing.site_names):
            for kind in ("tare_scale", "tare_bias"):
                parameters[f"{site_name}.{kind}"][unused[row]] = 1e4
    assert torch.equal(logits(model, input_ids), expected)
    used_editor = routing.selected[0, 0, 0]
    with torch.no_grad():
        parameters[f"{routing.site_names[0]}.tare_bias"][used_editor] += 1.0
    assert not torch.equal(logits(model, input_ids), expected)


def test_routing_usage_counts_only_unmasked_tokens():
    model, input_ids = tiny_model("llama"), sample_inputs(batch=2, length=6)
    attach_tare(model, TareConfig(num_editors=4, top_k=1, sites=["ffn", "attn"]))
    randomize(model)
    mask = torch.ones_like(input_ids)
    mask[1, 3:] = 0  # right padding: a causal model sees the first three tokens of row 1 unchanged
    masked = tare_routing(model, input_ids, mask)
    first_row = tare_routing(model, input_ids[:1])
    second_row = tare_routing(model, input_ids[1:, :3])
    assert torch.equal(masked.selected, first_row.selected)
    for site in range(4):
        chosen = torch.cat([first_row.selected[site].flatten(), second_row.selected[site].flatten()])
        expected = torch.bincount(chosen, minlength=4).float() / 9
        torch.testing.assert_close(masked.usage[site], expected)
    torch.testing.assert_close(masked.usage.sum(-1), torch.ones(4))


def test_routing_restores_training_mode():
    model = tiny_model("gpt2").train()
    attach_tare(model)
    tare_routing(model, sample_inputs())
    assert model.training
    with tare_disabled(model), pytest.raises(ValueError, match="disabled"):
        tare_routing(model, sample_inputs())


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_disabled_and_detached_equal_base(architecture):
    model, input_ids = tiny_model(architecture), sample_inputs()
    expected = logits(model, input_ids)
    attach_tare(model, TareConfig(sites=["ffn", "attn"]))
    randomize(model)
    with tare_disabled(model):
        assert torch.equal(logits(model, input_ids), expected)
    assert (logits(model, input_ids) - expected).abs().max() > 1e-6
    detach_tare(model)
    assert torch.equal(logits(model, input_ids), expected)
    assert not any("tare_" in name for name in model.state_dict())
    assert not has_tare(model) and not hasattr(model, "_tare_state")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("sites", SITE_CHOICES, ids="+".join)
@pytest.mark.parametrize("num_editors", [1, 4])
def test_parameter_count_is_exact(architecture, sites, num_editors):
    model = tiny_model(architecture)
    attached = attach_tare(model, TareConfig(num_editors=num_editors, top_k=1, sites=sites))
    assert len(attached) == 2 * len(sites)  # two layers
    assert tare_parameter_count(model) == len(attached) * 3 * num_editors * HIDDEN
    assert trainable_parameter_count(model) == tare_parameter_count(model)


def test_names_shapes_and_init():
    model = tiny_model("llama")
    sites = attach_tare(model, TareConfig(num_editors=3, top_k=2, layers=[1]))
    assert [site.name for site in sites] == ["model.layers.1.mlp.down_proj"]
    parameters = tare_parameters(model)
    prefix = "model.layers.1.mlp.down_proj"
    assert set(parameters) == {f"{prefix}.tare_scale", f"{prefix}.tare_bias", f"{prefix}.tare_selector"}
    assert set(parameters) <= set(model.state_dict())
    assert all(tensor.shape == (3, HIDDEN) and tensor.dtype == torch.float32 for tensor in parameters.values())
    assert torch.equal(parameters[f"{prefix}.tare_scale"], torch.ones(3, HIDDEN))
    assert torch.equal(parameters[f"{prefix}.tare_bias"], torch.zeros(3, HIDDEN))
    assert 0 < parameters[f"{prefix}.tare_selector"].std() < 0.05
    magnitudes = editor_magnitudes(model)
    assert torch.equal(magnitudes[prefix]["scale"], torch.zeros(3))
    with torch.no_grad():
        parameters[f"{prefix}.tare_bias"][1] = -2.0
    assert torch.equal(editor_magnitudes(model)[prefix]["bias"], torch.tensor([0.0, 2.0, 0.0]))


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="top_k"):
        TareConfig(num_editors=2, top_k=3)
    with pytest.raises(ValueError, match="top_k"):
        TareConfig(top_k=0)
    with pytest.raises(ValueError, match="num_editors"):
        TareConfig(num_editors=0)
    with pytest.raises(ValueError, match="sites"):
        TareConfig(sites=["mlp"])
    with pytest.raises(ValueError, match="vector_dtype"):
        TareConfig(vector_dtype="int8")
    with pytest.raises(ValueError, match="unknown TARE config keys"):
        TareConfig.from_dict({"num_editors": 4, "rank": 8})
    config = TareConfig(num_editors=6, top_k=3, sites="ffn,attn", layers=[1, 0, 1])
    assert config.sites == ["ffn", "attn"] and config.layers == [0, 1]
    assert TareConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_attaching_twice_or_beside_red_is_refused():
    model = tiny_model("gpt2")
    attach_tare(model)
    with pytest.raises(ValueError, match="already carries TARE"):
        attach_tare(model)
    other = tiny_model("gpt2")
    attach_red(other)
    with pytest.raises(ValueError, match="detach_red"):
        attach_tare(other)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_keep_fp32_tensors(dtype):
    model, input_ids = tiny_model("llama").to(dtype), sample_inputs()
    expected = logits(model, input_ids)
    attach_tare(model)
    assert all(tensor.dtype == torch.float32 for tensor in tare_parameters(model).values())
    assert torch.equal(logits(model, input_ids), expected)
    randomize(model)
    edited = logits(model, input_ids)
    assert edited.dtype == dtype and torch.isfinite(edited).all()


def test_merge_is_refused_with_the_reason_and_the_alternative():
    model = tiny_model("llama")
    attach_tare(model)
    with pytest.raises(MergeError, match=r"routed.*load_edits"):
        merge_and_unload(model)


def test_training_lowers_the_loss_and_reaches_every_tare_tensor():
    model, input_ids = tiny_model("llama"), sample_inputs(batch=4, length=12)
    attach_tare(model)
    parameters = tare_parameters(model)
    optimizer = torch.optim.AdamW(parameters.values(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        losses.append(loss.item())
        optimizer.step()
    assert losses[-1] < losses[0] - 0.05
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert set(grads) == set(parameters)  # the base stays frozen
    assert all(grad.abs().sum() > 0 for grad in grads.values())  # selectors too, once editors differ
