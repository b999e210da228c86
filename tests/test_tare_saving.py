"""TARE files: save/load exactness, the file format, a classification head, bad files refused, the real model."""

import json
import pickle

import pytest
import torch
import transformers as tf
from safetensors.torch import load_file
from test_edit import randomize as randomize_red
from test_saving import Exploit, rewrite_tensors
from test_tare import HIDDEN, randomize
from tiny_models import ARCHITECTURES, logits, sample_inputs, tiny_model

from red_explorer.core.checkpoint import EditsFileError
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, trainable_parameter_count
from red_explorer.core.red.saving import load_red
from red_explorer.core.registry import load_edits, save_edits
from red_explorer.core.tare.edit import (
    TareConfig,
    attach_tare,
    detach_tare,
    has_tare,
    tare_parameter_count,
    tare_parameters,
)
from red_explorer.core.tare.saving import load_tare, save_tare


def saved_tare(tmp_path, architecture="llama", config=None, head=()):
    model = tiny_model(architecture)
    attach_tare(model, config or TareConfig(sites=["ffn", "attn"]))
    randomize(model)
    return model, save_tare(model, tmp_path / "edits", base_model="tiny", head_parameter_names=head)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_save_then_load_into_fresh_model_gives_same_logits(architecture, tmp_path):
    config = TareConfig(num_editors=3, top_k=2, sites=["ffn", "attn"])
    model, directory = saved_tare(tmp_path, architecture, config)
    fresh = tiny_model(architecture)
    loaded = load_tare(fresh, directory)
    assert loaded.num_editors == 3 and loaded.top_k == 2 and loaded.sites == ["ffn", "attn"]
    assert torch.equal(logits(fresh, sample_inputs()), logits(model, sample_inputs()))


def test_file_format(tmp_path):
    model, directory = saved_tare(tmp_path)
    record = json.loads((directory / "red_config.json").read_text())
    assert record["method"] == "tare" and record["format_version"] == 1
    for key in ("library_version", "base_model", "model_type", "architectures", "model_dtype", "head_parameters"):
        assert key in record
    assert record["hidden_size"] == HIDDEN and record["layers"] == [0, 1] and record["sites"] == ["ffn", "attn"]
    assert record["tare"]["num_editors"] == 4 and record["tare"]["top_k"] == 2
    assert record["tare"]["target_modules"] == record["modules"] and len(record["modules"]) == 4
    tensors = load_file(str(directory / "edits.safetensors"))
    assert set(tensors) == set(tare_parameters(model))
    assert tensors["model.layers.1.mlp.down_proj.tare_selector"].shape == (4, HIDDEN)


def test_classification_head_saved_beside_the_editors(tmp_path):
    model = tiny_model("bert")
    attach_tare(model)
    randomize(model)
    with torch.no_grad():
        model.classifier.weight.normal_()
    save_tare(model, tmp_path, "tiny", head_parameter_names=["classifier.weight", "classifier.bias"])
    fresh = tiny_model("bert")
    load_tare(fresh, tmp_path)
    assert torch.equal(fresh.classifier.weight, model.classifier.weight)
    assert torch.equal(logits(fresh, sample_inputs()), logits(model, sample_inputs()))


def wide_llama():
    config = tf.LlamaConfig(
        vocab_size=100,
        hidden_size=48,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=2,
    )
    return tf.LlamaForCausalLM(config)


def set_tare_section(directory, **changes):
    path = directory / "red_config.json"
    record = json.loads(path.read_text())
    record["tare"].update(changes)
    path.write_text(json.dumps(record))


SITE = "model.layers.0.mlp.down_proj"
BAD_FILES = {
    "wrong architecture": (lambda directory: None, lambda: tiny_model("gpt2"), "trained on a 'llama' model"),
    "wrong hidden size": (
        lambda directory: None,
        wide_llama,
        r"shape \(4, 32\); attached to this model the edit needs \(4, 48\)",
    ),
    "missing tensor": (
        lambda directory: rewrite_tensors(directory, lambda tensors: tensors.pop(f"{SITE}.tare_selector")),
        lambda: tiny_model("llama"),
        "lacks tensors",
    ),
    "extra tensor": (
        lambda directory: rewrite_tensors(directory, lambda tensors: tensors.update(surprise=torch.zeros(32))),
        lambda: tiny_model("llama"),
        "unexpected tensors",
    ),
    "wrong shape": (
        lambda directory: rewrite_tensors(
            directory, lambda tensors: tensors.update({f"{SITE}.tare_bias": torch.ones(4, 31)})
        ),
        lambda: tiny_model("llama"),
        r"shape \(4, 31\); attached to this model the edit needs \(4, 32\)",
    ),
    "num_editors mismatch": (
        lambda directory: set_tare_section(directory, num_editors=5),
        lambda: tiny_model("llama"),
        r"shape \(4, 32\); attached to this model the edit needs \(5, 32\)",
    ),
    "non-finite": (
        lambda directory: rewrite_tensors(
            directory, lambda tensors: tensors[f"{SITE}.tare_scale"].__setitem__((1, 0), float("inf"))
        ),
        lambda: tiny_model("llama"),
        "NaN or infinite",
    ),
    "broken tare section": (
        lambda directory: set_tare_section(directory, top_k=9),
        lambda: tiny_model("llama"),
        "no valid 'tare' section",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_raises_and_leaves_the_model_clean(case, tmp_path):
    damage, make_model, message = BAD_FILES[case]
    _, directory = saved_tare(tmp_path)
    damage(directory)
    model = make_model()
    with pytest.raises(EditsFileError, match=message):
        load_tare(model, directory)
    assert not has_tare(model) and not any("tare_" in name for name in model.state_dict())


def test_pickle_renamed_is_refused_and_never_executed(tmp_path, monkeypatch):
    _, directory = saved_tare(tmp_path)
    (directory / "edits.safetensors").write_bytes(pickle.dumps({"x": Exploit()}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EditsFileError, match="not a safetensors file"):
        load_tare(tiny_model("llama"), directory)
    assert not (tmp_path / "PWNED").exists()


def test_method_loaders_refuse_the_other_method_and_load_edits_dispatches(tmp_path):
    red_model = tiny_model("llama")
    attach_red(red_model, RedConfig())
    randomize_red(red_model)
    red_directory = save_edits(red_model, tmp_path / "red", base_model="tiny")
    with pytest.raises(EditsFileError, match="holds 'red' edits, not 'tare'"):
        load_tare(tiny_model("llama"), red_directory)
    tare_model, tare_directory = saved_tare(tmp_path)
    with pytest.raises(EditsFileError, match="holds 'tare' edits, not 'red'"):
        load_red(tiny_model("llama"), tare_directory)
    fresh, input_ids = tiny_model("llama"), sample_inputs()
    assert isinstance(load_edits(fresh, tare_directory), TareConfig) and has_tare(fresh)
    torch.testing.assert_close(logits(fresh, input_ids), logits(tare_model, input_ids), rtol=0, atol=0)


@pytest.mark.real_model
def test_real_default_model_trains_saves_and_loads(tmp_path, default_model):
    import copy

    loaded = default_model
    model, tokenizer = copy.deepcopy(loaded.model), loaded.tokenizer
    batch = tokenizer(["The capital of France is Paris."], return_tensors="pt")
    input_ids = batch["input_ids"]
    expected = logits(model, input_ids)
    sites = attach_tare(model, TareConfig(num_editors=4, top_k=2))
    hidden = model.config.hidden_size
    assert tare_parameter_count(model) == len(sites) * 3 * 4 * hidden == trainable_parameter_count(model)
    assert torch.equal(logits(model, input_ids), expected)
    optimizer = torch.optim.AdamW(tare_parameters(model).values(), lr=1e-2)
    losses = []
    for _ in range(4):
        optimizer.zero_grad()
        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        losses.append(loss.item())
        optimizer.step()
    assert losses[-1] < losses[0]
    trained = logits(model, input_ids)
    directory = save_tare(model, tmp_path / "tare", base_model=loaded.name)
    detach_tare(model)
    assert torch.equal(logits(model, input_ids), expected)
    load_tare(model, directory)
    assert torch.equal(logits(model, input_ids), trained)
