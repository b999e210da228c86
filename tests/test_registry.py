"""Every method of the registry through the one interface: train, count, switch off, save/load, merge."""

import pytest
import torch
from tiny_models import logits, sample_inputs, tiny_model

from red_explorer.core.method import MergeError
from red_explorer.core.registry import (
    METHODS,
    REGISTRY,
    MethodSpec,
    apply_method,
    base_behaviour,
    detect_method,
    load_method,
    merge_and_unload,
    save_method,
)

EDIT_METHODS = [name for name in METHODS if not REGISTRY[name].saves_whole_model]


def trained(name: str, steps: int = 6):
    """A tiny GPT-2 (it has biases, layer norms and attention projections for every method) trained by ``name``."""
    model, input_ids = tiny_model("gpt2"), sample_inputs(batch=4, length=12)
    torch.manual_seed(0)
    model = apply_method(model, MethodSpec(name), "causal-lm")
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-2)
    losses = []
    model.train()
    for _ in range(steps):
        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return model.eval(), input_ids, losses


@pytest.mark.parametrize("name", METHODS)
def test_training_lowers_the_loss_and_the_count_is_the_trainable_parameters(name):
    model, _, losses = trained(name)
    assert losses[-1] < losses[0]
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    assert REGISTRY[name].parameter_count(model) == trainable > 0


@pytest.mark.parametrize("name", EDIT_METHODS)
def test_switched_off_is_exactly_the_base(name):
    base_logits = logits(tiny_model("gpt2"), sample_inputs(batch=4, length=12))
    model, input_ids, _ = trained(name)
    assert not torch.equal(logits(model, input_ids), base_logits)
    with base_behaviour(model, MethodSpec(name)):
        assert torch.equal(logits(model, input_ids), base_logits)


@pytest.mark.parametrize("name", EDIT_METHODS)
def test_saved_then_loaded_gives_the_same_outputs(name, tmp_path):
    model, input_ids, _ = trained(name)
    save_method(model, MethodSpec(name), tmp_path / name, base_model="tiny-gpt2")
    assert detect_method(tmp_path / name) == name
    fresh, spec = load_method(tiny_model("gpt2"), tmp_path / name)
    assert spec.method == name
    torch.testing.assert_close(logits(fresh, input_ids), logits(model, input_ids), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", METHODS)
def test_merged_equals_unmerged_or_the_refusal_says_why(name):
    model, input_ids, _ = trained(name)
    try:
        merged = merge_and_unload(model)
    except MergeError as error:
        assert REGISTRY[name].title in str(error) and "cannot" in str(error)
        return
    assert not any("red_" in key or "lora_" in key for key in merged.state_dict())
    torch.testing.assert_close(logits(merged, input_ids), logits(model, input_ids), rtol=1e-4, atol=1e-4)
