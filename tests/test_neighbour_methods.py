"""RED's neighbours in the registry (IA3, DoRA, LN tuning, BitFit, LoReFT): train, count, off, save/load, merge."""

import functools
import json

import pytest
import torch
from safetensors.torch import load_file
from test_cli import SAMPLE, cli
from tiny_models import sample_inputs, save_tiny_causal_lm, tiny_model

from red_explorer.core.loreft.edit import get_loreft_state, interventions
from red_explorer.core.loreft.positions import edited_positions, prompt_mask
from red_explorer.core.method import MergeError
from red_explorer.core.registry import (
    REGISTRY,
    MethodSpec,
    apply_method,
    base_behaviour,
    detect_method,
    load_method,
    merge_and_unload,
    save_method,
)
from red_explorer.models.loading import load_model

NEIGHBOURS = ["ia3", "dora", "lntuning", "bitfit", "loreft"]
ARCHITECTURES = ["llama", "gpt2", "bert"]  # bert: sequence classification with a new head
CASES = [(name, arch) for name in NEIGHBOURS for arch in ARCHITECTURES if (name, arch) != ("bitfit", "llama")]
HEAD = ["classifier.bias", "classifier.weight"]  # BertForSequenceClassification's new head (3 labels)
LAYERS, HIDDEN, INTERMEDIATE, KV, GPT2_INNER = 2, 32, 64, 16, 128  # tiny_models: 2 layers, 2 of 4 heads for k, v


def lora_size(fan_in: int, fan_out: int, rank: int = 8) -> int:
    """A (r, in) + B (out, r) + DoRA's magnitude (out,)."""
    return rank * fan_in + fan_out * rank + fan_out


HAND_COUNTS = {
    # IA3: PEFT's defaults; output vectors on k and v (or GPT-2's fused c_attn), input vectors on the FFN output layer
    ("ia3", "llama"): LAYERS * (KV + KV + INTERMEDIATE),
    ("ia3", "gpt2"): LAYERS * (3 * HIDDEN + GPT2_INNER),
    ("ia3", "bert"): LAYERS * (HIDDEN + HIDDEN + HIDDEN + INTERMEDIATE),  # key, value, attention.output, output
    # DoRA: LoRA's default targets, q and v (GPT-2: c_attn)
    ("dora", "llama"): LAYERS * (lora_size(HIDDEN, HIDDEN) + lora_size(HIDDEN, KV)),
    ("dora", "gpt2"): LAYERS * lora_size(HIDDEN, 3 * HIDDEN),
    ("dora", "bert"): LAYERS * 2 * lora_size(HIDDEN, HIDDEN),
    # LN tuning: RMSNorm has a gain, LayerNorm a gain and a bias
    ("lntuning", "llama"): LAYERS * 2 * HIDDEN + HIDDEN,
    ("lntuning", "gpt2"): LAYERS * 2 * 2 * HIDDEN + 2 * HIDDEN,
    ("lntuning", "bert"): 2 * HIDDEN + LAYERS * 2 * 2 * HIDDEN,  # embeddings + 2 per layer (no PEFT default)
    # BitFit: ln_1, c_attn (3H), attn.c_proj, ln_2, c_fc (inner), mlp.c_proj per layer + ln_f
    ("bitfit", "gpt2"): LAYERS * (HIDDEN + 3 * HIDDEN + HIDDEN + HIDDEN + GPT2_INNER + HIDDEN) + HIDDEN,
    # embeddings LayerNorm; q, k, v, attention dense, its LayerNorm, intermediate, output, its LayerNorm; pooler
    ("bitfit", "bert"): HIDDEN + LAYERS * (7 * HIDDEN + INTERMEDIATE) + HIDDEN,
    # LoReFT r=8 per layer: R's stored matrix (r, H) + W (r, H) + b (r,)
    **{("loreft", arch): LAYERS * (2 * 8 * HIDDEN + 8) for arch in ARCHITECTURES},
}


def task_of(arch: str) -> str:
    return "classification" if arch == "bert" else "causal-lm"


def heads_of(arch: str) -> list[str]:
    return HEAD if arch == "bert" else []


def batch_for(arch: str) -> dict:
    input_ids = sample_inputs(batch=4, length=12)
    labels = torch.tensor([0, 1, 2, 1]) if arch == "bert" else input_ids
    return {"input_ids": input_ids, "labels": labels}


def outputs(model, arch: str) -> torch.Tensor:
    """Logits of the causal models; the encoder's last hidden states for bert (its head is new in every run)."""
    with torch.no_grad():
        result = model(input_ids=batch_for(arch)["input_ids"], output_hidden_states=True)
    return result.hidden_states[-1] if arch == "bert" else result.logits


def train_steps(model, batch: dict, steps: int = 6, weight_decay: float = 0.01) -> list[float]:
    """A few AdamW steps over every trainable parameter (the method's and the head's)."""
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-2, weight_decay=weight_decay)
    losses = []
    model.train()
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


@functools.cache
def trained(name: str, arch: str):
    """A tiny model trained by ``name`` (one per case, shared by the tests below, which do not change it)."""
    torch.manual_seed(0)
    model = apply_method(tiny_model(arch), MethodSpec(name), task_of(arch), heads_of(arch))
    losses = train_steps(model, batch_for(arch))
    return model, losses


@pytest.mark.parametrize("name, arch", CASES)
def test_training_lowers_the_loss(name, arch):
    _, losses = trained(name, arch)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name, arch", CASES)
def test_parameter_count_is_the_hand_count_and_the_head_trains_too(name, arch):
    model, _ = trained(name, arch)
    count = REGISTRY[name].parameter_count(model)
    trainable = {key: value for key, value in model.named_parameters() if value.requires_grad}
    head = sum(value.numel() for key, value in trainable.items() if "classifier" in key)
    assert count == HAND_COUNTS[name, arch]
    assert sum(value.numel() for value in trainable.values()) == count + head
    assert head == (3 * HIDDEN + 3 if arch == "bert" else 0)


@pytest.mark.parametrize("name, arch", CASES)
def test_switched_off_is_exactly_the_base(name, arch):
    model, _ = trained(name, arch)
    base = outputs(tiny_model(arch), arch)
    assert not torch.equal(outputs(model, arch), base)
    with base_behaviour(model, MethodSpec(name)):
        assert torch.equal(outputs(model, arch), base)
    assert not torch.equal(outputs(model, arch), base)  # the trained edit is back


@pytest.mark.parametrize("name, arch", CASES)
def test_saved_then_loaded_into_a_fresh_model_gives_the_same_outputs(name, arch, tmp_path):
    model, _ = trained(name, arch)
    save_method(model, MethodSpec(name), tmp_path, base_model=f"tiny-{arch}", head_parameter_names=heads_of(arch))
    assert detect_method(tmp_path) == name
    assert [entry for entry, method in REGISTRY.items() if method.holds(tmp_path)] == [name]
    fresh = tiny_model(arch)
    if arch == "bert":
        torch.nn.init.normal_(fresh.classifier.weight)  # the saved head must replace this one
    loaded, spec = load_method(fresh, tmp_path)
    assert spec.method == name
    with torch.no_grad():
        expected, actual = model(**batch_for(arch)).logits, loaded(**batch_for(arch)).logits
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name, arch", CASES)
def test_merged_equals_unmerged_or_the_refusal_says_why(name, arch):
    model, _ = trained(name, arch)
    if name == "loreft":
        with pytest.raises(MergeError, match="LoReFT cannot be merged.*first and last prompt tokens"):
            merge_and_unload(model)
        return
    merged = merge_and_unload(model)
    assert not hasattr(merged, "peft_config") and not any(
        "lora_" in key or "ia3_" in key for key in merged.state_dict()
    )
    with torch.no_grad():
        expected, actual = model(**batch_for(arch)).logits, merged(**batch_for(arch)).logits
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_bitfit_refuses_a_model_without_biases_and_names_the_closest_method():
    with pytest.raises(ValueError, match="'llama' model has none.*variant='bias'"):
        apply_method(tiny_model("llama"), MethodSpec("bitfit"), "causal-lm")


def test_lora_does_not_claim_dora_ia3_or_ln_tuning_folders(tmp_path):
    for name in ("lora", "dora", "ia3", "lntuning"):
        model = apply_method(tiny_model("llama"), MethodSpec(name), "causal-lm")
        save_method(model, MethodSpec(name), tmp_path / name)
        adapter = json.loads((tmp_path / name / "adapter_config.json").read_text())
        holders = [entry for entry, method in REGISTRY.items() if method.holds(tmp_path / name)]
        assert holders == [name], (adapter["peft_type"], adapter.get("use_dora"))


# ---------------------------------------------------------------- LoReFT: the formula, the positions, R


def randomized_loreft(options: dict, seed: int = 5):
    """A tiny Llama with LoReFT attached and W, b moved far from the identity."""
    model = apply_method(tiny_model("llama"), MethodSpec("loreft", **options), "causal-lm")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for intervention in interventions(model).values():
            intervention.weight.copy_(torch.randn(intervention.weight.shape, generator=generator))
            intervention.bias.copy_(torch.randn(intervention.bias.shape, generator=generator))
    return model


def layer_output(model, name: str, **inputs) -> torch.Tensor:
    """The output of module ``name`` (after any edit hook on it) in one forward pass."""
    captured = []
    handle = model.get_submodule(name).register_forward_hook(lambda module, args, output: captured.append(output))
    with torch.no_grad():
        model(**inputs)
    handle.remove()
    return captured[0]


@pytest.mark.parametrize("site, module", [("block", "model.layers.1"), ("ffn", "model.layers.1.mlp.down_proj")])
def test_loreft_is_the_hand_formula_at_the_chosen_positions_and_nothing_elsewhere(site, module):
    model = randomized_loreft({"rank": 4, "first": 2, "last": 3, "site": site, "layers": [1]})
    input_ids = sample_inputs(batch=2, length=10)
    mask = torch.ones_like(input_ids)
    mask[1, 7:] = 0  # row 1 has 7 real tokens (right padding)
    base = layer_output(tiny_model("llama"), module, input_ids=input_ids, attention_mask=mask)  # h: (B, T, H)
    edited = layer_output(model, module, input_ids=input_ids, attention_mask=mask)
    intervention = interventions(model)[module]
    rotation, weight, bias = intervention.projection, intervention.weight, intervention.bias
    chosen = {0: [0, 1, 7, 8, 9], 1: [0, 1, 4, 5, 6]}  # first 2 and last 3 real tokens of each row
    for row, columns in chosen.items():
        h = base[row, columns]  # (N, H)
        expected = h + (h @ weight.T + bias - h @ rotation.T) @ rotation  # h + Rᵀ(W h + b − R h)
        torch.testing.assert_close(edited[row, columns], expected, rtol=1e-5, atol=1e-5)
        others = [column for column in range(10) if column not in columns]
        assert torch.equal(edited[row, others], base[row, others])


def test_positions_follow_padding_on_either_side_and_the_masked_prompt():
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1]])
    labels = torch.tensor(
        [[-100, -100, -100, -100, 5, 6, -100, -100], [-100] * 8, [7] * 8]  # prompt of 4 / no labels learnt / text
    )
    prompt = prompt_mask(mask, labels)
    assert prompt.long().tolist() == [[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1, 1, 1], [1] * 8]
    chosen = edited_positions(prompt, first=1, last=2)
    assert chosen.long().tolist() == [[1, 0, 1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 1, 1], [1, 0, 0, 0, 0, 0, 1, 1]]
    assert prompt_mask(mask, torch.tensor([0, 1, 2])).equal(mask.bool())  # classification labels: all real tokens


def test_generation_edits_the_prompt_pass_only():
    model = randomized_loreft({"rank": 4, "first": 2, "last": 2})
    state, seen = get_loreft_state(model), []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(state.positions), with_kwargs=True)
    prompt = sample_inputs(batch=1, length=6)
    output = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=3, do_sample=False)
    assert output.shape[1] == 9 and len(seen) == 3
    rows, columns = seen[0]
    assert rows.tolist() == [0, 0, 0, 0] and columns.tolist() == [0, 1, 4, 5]
    assert seen[1] is None and seen[2] is None  # the decoding steps edit nothing


def test_rotation_rows_stay_orthonormal_through_training_with_weight_decay():
    model = apply_method(tiny_model("llama"), MethodSpec("loreft", rank=4), "causal-lm")
    before = {name: module.projection.detach().clone() for name, module in interventions(model).items()}
    losses = train_steps(model, batch_for("llama"), steps=8, weight_decay=0.1)
    assert losses[-1] < losses[0]
    for name, intervention in interventions(model).items():
        rotation = intervention.projection.detach()  # (r, H)
        assert not torch.allclose(rotation, before[name])  # R trained
        torch.testing.assert_close(rotation @ rotation.T, torch.eye(4), rtol=0, atol=1e-5)


def test_loreft_starts_as_the_identity():
    model = apply_method(tiny_model("llama"), MethodSpec("loreft"), "causal-lm")
    assert torch.equal(outputs(model, "llama"), outputs(tiny_model("llama"), "llama"))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"rank": 0}, "rank must be at least 1"),
        ({"first": 0, "last": 0}, "edits no position"),
        ({"site": "attn"}, "site must be one of"),
        ({"layers": [-1]}, "layer indices"),
    ],
)
def test_loreft_options_explain_what_to_fix(options, message):
    with pytest.raises(ValueError, match=message):
        MethodSpec("loreft", **options)


@pytest.mark.parametrize("method, title", [("lora", "LoRA"), ("dora", "DoRA")])
@pytest.mark.parametrize(
    "options, message",
    [({"rank": 0}, "rank must be a positive integer"), ({"alpha": 0}, "alpha must be"), ({"dropout": 1.0}, "dropout")],
)
def test_lora_and_dora_options_name_their_method_in_what_to_fix(method, title, options, message):
    with pytest.raises(ValueError, match=f"{title} {message}"):
        MethodSpec(method, **options)


# ---------------------------------------------------------------- the CLI


def test_cli_trains_loreft_with_option_flags(tmp_path):
    model_dir = save_tiny_causal_lm(tmp_path / "model")
    out = tmp_path / "run"
    options = ["--option", "rank=4", "--option", "first=3", "--option", "last=2", "--option", "layers=[1]"]
    run = ["--model", model_dir, "--data", SAMPLE, "--max-rows", 16, "--max-steps", 2, "--out", out]
    cli("train", "--method", "loreft", *options, *run)
    record = json.loads((out / "red_config.json").read_text())
    assert record["method"] == "loreft" and record["modules"] == ["model.layers.1"]
    assert record["loreft"] == {"rank": 4, "first": 3, "last": 2, "site": "block", "layers": [1]}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trainable_parameters"] == 2 * 4 * HIDDEN + 4
    loaded, spec = load_method(load_model(str(model_dir), device="cpu").model, out)
    assert spec == MethodSpec("loreft", rank=4, first=3, last=2, layers=[1])
    saved = load_file(str(out / "edits.safetensors"))
    intervention = interventions(loaded)["model.layers.1"]
    assert torch.equal(intervention.weight, saved["model.layers.1.loreft.weight"])
    torch.testing.assert_close(intervention.projection, saved["model.layers.1.loreft.rotation"], rtol=0, atol=1e-6)
