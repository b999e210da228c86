"""Saving and loading edits: parity, the file format, and a clear error for every bad file."""

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_edit import VARIANTS, randomize
from tiny_models import ARCHITECTURES, logits, sample_inputs, tiny_model

from red_explorer.core.checkpoint import EditsFileError
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, has_red, red_vectors
from red_explorer.core.registry import load_edits, save_edits


def saved_edits(tmp_path, architecture="llama", variant="full", head=()):
    model = tiny_model(architecture)
    attach_red(model, RedConfig.from_variant(variant, sites=["ffn", "attn"]))
    randomize(model)
    return model, save_edits(model, tmp_path / "edits", base_model="tiny", head_parameter_names=head)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_save_then_load_into_fresh_model_gives_same_logits(architecture, variant, tmp_path):
    model, directory = saved_edits(tmp_path, architecture, variant)
    fresh = tiny_model(architecture)
    config = load_edits(fresh, directory)
    assert config.variant == variant
    assert torch.equal(logits(fresh, sample_inputs()), logits(model, sample_inputs()))


def test_file_format(tmp_path):
    model, directory = saved_edits(tmp_path)
    record = json.loads((directory / "red_config.json").read_text())
    for key in (
        "base_model",
        "base_model_config_sha256",
        "sites",
        "layers",
        "hidden_size",
        "model_dtype",
        "format_version",
        "library_version",
        "modules",
    ):
        assert key in record
    assert record["hidden_size"] == 32 and record["layers"] == [0, 1] and record["red"]["vector_dtype"] == "float32"
    assert record["red"]["variant"] == "full" and record["method"] == "red"
    tensors = load_file(str(directory / "edits.safetensors"))
    assert tensors["model.layers.1.mlp.down_proj.red_scale"].shape == (32,)
    assert set(tensors) == set(red_vectors(model))


def test_classification_head_saved_beside_the_vectors(tmp_path):
    model = tiny_model("bert")
    attach_red(model)
    randomize(model)
    with torch.no_grad():
        model.classifier.weight.normal_()
    save_edits(model, tmp_path, "tiny", head_parameter_names=["classifier.weight", "classifier.bias"])
    fresh = tiny_model("bert")  # same base, untrained head
    assert not torch.equal(fresh.classifier.weight, model.classifier.weight)
    load_edits(fresh, tmp_path)
    assert torch.equal(fresh.classifier.weight, model.classifier.weight)
    assert torch.equal(logits(fresh, sample_inputs()), logits(model, sample_inputs()))


def rewrite_tensors(directory, change):
    tensors = load_file(str(directory / "edits.safetensors"))
    change(tensors)
    save_file(tensors, str(directory / "edits.safetensors"))


def test_wrong_architecture(tmp_path):
    _, directory = saved_edits(tmp_path, "llama")
    with pytest.raises(EditsFileError, match="trained on a 'llama' model"):
        load_edits(tiny_model("gpt2"), directory)


def test_wrong_hidden_size(tmp_path):
    _, directory = saved_edits(tmp_path, "llama")
    import transformers as tf

    wide = tf.LlamaForCausalLM(
        tf.LlamaConfig(
            vocab_size=100,
            hidden_size=48,
            intermediate_size=64,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_hidden_layers=2,
        )
    )
    with pytest.raises(EditsFileError, match=r"shape \(32,\); attached to this model the edit needs \(48,\)"):
        load_edits(wide, directory)
    assert not has_red(wide)


def test_missing_tensor(tmp_path):
    _, directory = saved_edits(tmp_path)
    rewrite_tensors(directory, lambda tensors: tensors.pop("model.layers.0.mlp.down_proj.red_bias"))
    fresh = tiny_model("llama")
    with pytest.raises(EditsFileError, match="lacks tensors"):
        load_edits(fresh, directory)
    assert not has_red(fresh)


def test_extra_tensor(tmp_path):
    _, directory = saved_edits(tmp_path)
    rewrite_tensors(directory, lambda tensors: tensors.update(surprise=torch.zeros(32)))
    with pytest.raises(EditsFileError, match="unexpected tensors"):
        load_edits(tiny_model("llama"), directory)


def test_non_finite_values(tmp_path):
    _, directory = saved_edits(tmp_path)
    rewrite_tensors(
        directory, lambda tensors: tensors["model.layers.0.mlp.down_proj.red_scale"].__setitem__(0, float("nan"))
    )
    with pytest.raises(EditsFileError, match="NaN or infinite"):
        load_edits(tiny_model("llama"), directory)


def test_wrong_shape(tmp_path):
    _, directory = saved_edits(tmp_path)
    rewrite_tensors(
        directory, lambda tensors: tensors.update({"model.layers.0.mlp.down_proj.red_scale": torch.ones(31)})
    )
    with pytest.raises(EditsFileError, match=r"shape \(31,\)"):
        load_edits(tiny_model("llama"), directory)


class Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickle_renamed_is_refused_and_never_executed(tmp_path, monkeypatch):
    _, directory = saved_edits(tmp_path)
    (directory / "edits.safetensors").write_bytes(pickle.dumps({"x": Exploit()}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EditsFileError, match="not a safetensors file"):
        load_edits(tiny_model("llama"), directory)
    assert not (tmp_path / "PWNED").exists()


def test_missing_and_broken_config(tmp_path):
    _, directory = saved_edits(tmp_path)
    (directory / "red_config.json").write_text("{not json")
    with pytest.raises(EditsFileError, match="not valid JSON"):
        load_edits(tiny_model("llama"), directory)
    (directory / "red_config.json").unlink()
    with pytest.raises(EditsFileError, match="holds no edits: expected red_config.json"):
        load_edits(tiny_model("llama"), directory)


def test_unknown_format_version(tmp_path):
    _, directory = saved_edits(tmp_path)
    record = json.loads((directory / "red_config.json").read_text())
    record["format_version"] = 99
    (directory / "red_config.json").write_text(json.dumps(record))
    with pytest.raises(EditsFileError, match="format_version 99"):
        load_edits(tiny_model("llama"), directory)
