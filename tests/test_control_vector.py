"""Control vectors: GGUF round trip, the residual-add reading == RED bias-only logits, every refusal, the CLI."""

from __future__ import annotations

import copy
import json
import pickle

import gguf
import numpy as np
import pytest
import torch
from explore_helpers import cli, save_random_run, with_random_red
from tiny_models import DECODER, logits, sample_inputs, save_tiny_causal_lm, tiny_model
from transformers import Glm4Config, Glm4ForCausalLM, GraniteConfig, GraniteForCausalLM, LlamaConfig, LlamaForCausalLM

from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import red_disabled, red_vectors
from red_explorer.core.red.saving import save_red
from red_explorer.core.registry import load_edits
from red_explorer.explore.control_vector import (
    control_vector_applied,
    export_control_vector,
    import_control_vector,
)
from red_explorer.explore.gguf_file import ControlVectorFile, read_control_vector, write_control_vector
from red_explorer.models.loading import load_model

BIAS_ONLY = RedConfig(use_scale=False, layers=[1, 2, 3])


def four_layer_llama() -> torch.nn.Module:
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**(DECODER | {"num_hidden_layers": 4}))).eval()
    model.config.architectures = ["LlamaForCausalLM"]
    return model


def biases(directory) -> dict[int, torch.Tensor]:
    model = four_layer_llama()
    load_edits(model, directory)
    return {int(name.split(".")[2]): vector.detach() for name, vector in red_vectors(model).items()}


def test_export_writes_the_llama_cpp_format_and_import_round_trips(tmp_path):
    run = save_random_run(four_layer_llama(), tmp_path / "run", BIAS_ONLY, seed=1)
    exported = export_control_vector(run, tmp_path / "vector.gguf", four_layer_llama())
    path = exported.path
    assert exported.layers == [1, 2, 3] and exported.dropped == []
    reader = gguf.GGUFReader(str(path))
    assert reader.get_field("general.architecture").contents() == "controlvector"
    assert reader.get_field("controlvector.model_hint").contents() == "llama"
    assert reader.get_field("controlvector.layer_count").contents() == 3
    assert [tensor.name for tensor in reader.tensors] == ["direction.1", "direction.2", "direction.3"]
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [32] for t in reader.tensors)
    trained = biases(run)
    vector = read_control_vector(path)
    assert all(torch.equal(vector.directions[layer], trained[layer]) for layer in (1, 2, 3))
    imported = import_control_vector(four_layer_llama(), path, tmp_path / "back")
    assert json.loads((imported / "red_config.json").read_text())["red"]["variant"] == "bias"
    back = biases(imported)
    assert back.keys() == trained.keys() and all(torch.equal(back[layer], trained[layer]) for layer in back)
    half = biases(import_control_vector(four_layer_llama(), path, tmp_path / "half", strength=-0.5))
    assert all(torch.allclose(half[layer], -0.5 * trained[layer]) for layer in half)


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gemma", "gpt2", "gpt_neox"])
def test_the_residual_add_reading_equals_red_bias_only_logits(architecture, tmp_path):
    model = with_random_red(tiny_model(architecture), RedConfig(use_scale=False, layers=[1]), seed=3)
    save_red(model, tmp_path / "run")
    exported = export_control_vector(tmp_path / "run", tmp_path / "v.gguf", tiny_model(architecture))
    vector = read_control_vector(exported.path)
    inputs = sample_inputs()
    edited = logits(model, inputs)
    with red_disabled(model):
        base = logits(model, inputs)
        with control_vector_applied(model, vector.directions):
            steered = logits(model, inputs)
        with control_vector_applied(model, vector.directions, strength=0.0):
            assert torch.equal(logits(model, inputs), base)
    assert (steered - edited).abs().max() < 1e-5
    assert (steered - base).abs().max() > 1e-3


def test_a_four_layer_model_steered_on_three_layers_matches(tmp_path):
    model = with_random_red(four_layer_llama(), BIAS_ONLY, seed=4)
    save_red(model, tmp_path / "run")
    directions = read_control_vector(
        export_control_vector(tmp_path / "run", tmp_path / "v.gguf", model).path
    ).directions
    inputs = sample_inputs()
    edited = logits(model, inputs)
    with red_disabled(model), control_vector_applied(model, directions):
        assert (logits(model, inputs) - edited).abs().max() < 1e-5


def test_export_refusals_say_why_and_how(tmp_path):
    full = save_random_run(four_layer_llama(), tmp_path / "full", RedConfig(layers=[1, 2]), seed=1)
    with pytest.raises(ValueError, match="full has a scale part .* export its bias only .* or train it bias-only"):
        export_control_vector(full, tmp_path / "v.gguf", four_layer_llama(), name="full")
    exported = export_control_vector(full, tmp_path / "v.gguf", four_layer_llama(), bias_only=True)
    assert exported.dropped == ["the scale vectors of 2 layers"]
    assert sorted(read_control_vector(exported.path).directions) == [1, 2]
    layer_zero = save_random_run(four_layer_llama(), tmp_path / "zero", RedConfig(use_scale=False), seed=1)
    with pytest.raises(
        ValueError, match="my run edits layer 0, which llama.cpp never steers .* layers 1 and up"
    ) as zero:
        export_control_vector(layer_zero, tmp_path / "x.gguf", four_layer_llama(), name="my run")
    assert zero.value.part == "layer 0" and zero.value.advice("A", "B").endswith(
        "layer 0): export its bias only (layers 1 and up; A), or train on layers 1 and up (B)"
    )
    assert str(pickle.loads(pickle.dumps(zero.value))) == str(zero.value)  # it may come back from a GPU worker
    attention = RedConfig(use_scale=False, sites=["attn"], layers=[1])
    attn = save_random_run(four_layer_llama(), tmp_path / "attn", attention, seed=1)
    with pytest.raises(ValueError, match="which is not an FFN output.* train on the FFN sites"):
        export_control_vector(attn, tmp_path / "x.gguf", four_layer_llama())
    bert = save_random_run(tiny_model("bert"), tmp_path / "bert", RedConfig(use_scale=False, layers=[1]), seed=1)
    with pytest.raises(ValueError, match=r"passes the FFN output through .*output\.LayerNorm before the layer"):
        export_control_vector(bert, tmp_path / "x.gguf", tiny_model("bert"))
    gemma3 = save_random_run(tiny_model("gemma3"), tmp_path / "gemma3", RedConfig(use_scale=False, layers=[1]), seed=1)
    with pytest.raises(ValueError, match="through model.layers.1.post_feedforward_layernorm before the layer's output"):
        export_control_vector(gemma3, tmp_path / "x.gguf", tiny_model("gemma3"))
    with pytest.raises(ValueError, match="trained on a 'llama' model, not on this 'gemma' model"):
        export_control_vector(full, tmp_path / "x.gguf", tiny_model("gemma"), bias_only=True)
    assert not (tmp_path / "x.gguf").exists()


def test_bias_only_leaves_out_the_scale_and_layer_zero_and_says_so(tmp_path):
    run = save_random_run(four_layer_llama(), tmp_path / "run", RedConfig(), seed=2)
    exported = export_control_vector(run, tmp_path / "v.gguf", four_layer_llama(), bias_only=True)
    assert exported.layers == [1, 2, 3]
    assert exported.dropped == ["the scale vectors of 4 layers", "the bias of layer 0 (llama.cpp never steers layer 0)"]
    vector, trained = read_control_vector(exported.path), biases(run)
    assert sorted(vector.directions) == [1, 2, 3]
    assert all(torch.equal(vector.directions[layer], trained[layer]) for layer in (1, 2, 3))


def test_import_refusals_say_why(tmp_path):
    width = ControlVectorFile("llama", {1: torch.ones(16)})
    with pytest.raises(ValueError, match="has 16 values; this model's residual width is 32"):
        import_control_vector(four_layer_llama(), write_control_vector(tmp_path / "w.gguf", width), tmp_path / "o")
    deep = ControlVectorFile("llama", {7: torch.ones(32)})
    with pytest.raises(ValueError, match="no FFN output site in layer 7"):
        import_control_vector(four_layer_llama(), write_control_vector(tmp_path / "d.gguf", deep), tmp_path / "o")
    with pytest.raises(ValueError, match="rejects direction.0"):
        write_control_vector(tmp_path / "z.gguf", ControlVectorFile("llama", {0: torch.ones(32)}))
    writer = gguf.GGUFWriter(str(tmp_path / "model.gguf"), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="is a 'llama' GGUF .* not a control vector"):
        read_control_vector(tmp_path / "model.gguf")
    hinted = write_control_vector(tmp_path / "q.gguf", ControlVectorFile("qwen2", {1: torch.ones(32)}))
    with pytest.warns(UserWarning, match="made for a 'qwen2' model"):
        import_control_vector(four_layer_llama(), hinted, tmp_path / "ok")
    assert not (tmp_path / "o").exists()


def granite(multiplier: float = 0.22) -> torch.nn.Module:
    """A tiny Granite: the FFN output is multiplied by ``residual_multiplier`` before the residual add."""
    torch.manual_seed(0)
    model = GraniteForCausalLM(GraniteConfig(**DECODER, residual_multiplier=multiplier)).eval()
    model.config.architectures = ["GraniteForCausalLM"]
    return model


def steered_by_hand(model: torch.nn.Module, directions: dict[int, torch.Tensor], inputs) -> torch.Tensor:
    """llama.cpp's reading written out: direction.N added to the hidden state decoder layer N returns."""

    def add(direction, module, args, output):
        return output + direction if isinstance(output, torch.Tensor) else (output[0] + direction, *output[1:])

    handles = [
        model.model.layers[layer].register_forward_hook(lambda m, a, o, d=direction: add(d, m, a, o))
        for layer, direction in directions.items()
    ]
    try:
        return logits(model, inputs)
    finally:
        for handle in handles:
            handle.remove()


def test_a_granite_import_moves_the_residual_stream_as_llama_cpp_does(tmp_path):
    direction = torch.randn(32, generator=torch.Generator().manual_seed(7))
    path = write_control_vector(tmp_path / "v.gguf", ControlVectorFile("granite", {1: direction}))
    imported = import_control_vector(granite(), path, tmp_path / "run")
    edited = granite()
    load_edits(edited, imported)
    bias = red_vectors(edited)["model.layers.1.mlp.down_proj.red_bias"].detach()
    torch.testing.assert_close(bias, direction / 0.22)  # the FFN output is multiplied by 0.22 before the add
    inputs = sample_inputs()
    expected, base = steered_by_hand(granite(), {1: direction}, inputs), logits(granite(), inputs)
    assert (logits(edited, inputs) - expected).abs().max() < 1e-5 < 1e-2 < (expected - base).abs().max()
    exported = export_control_vector(imported, tmp_path / "back.gguf", granite())  # and back: the same vector
    torch.testing.assert_close(read_control_vector(exported.path).directions[1], direction)


def test_a_granite_export_is_the_vector_llama_cpp_needs(tmp_path):
    model = with_random_red(granite(), RedConfig(use_scale=False, layers=[1]), seed=3)
    save_red(model, tmp_path / "run")
    directions = read_control_vector(export_control_vector(tmp_path / "run", tmp_path / "v.gguf", granite()).path)
    inputs = sample_inputs()
    steered = steered_by_hand(granite(), directions.directions, inputs)
    assert (steered - logits(model, inputs)).abs().max() < 1e-5


def test_glm4_is_refused_both_ways_with_the_same_reason(tmp_path):
    def glm4() -> torch.nn.Module:
        torch.manual_seed(0)
        return Glm4ForCausalLM(Glm4Config(**DECODER, head_dim=8, pad_token_id=0)).eval()

    reason = r"this 'glm4' model passes the FFN output through model\.layers\.1\.post_mlp_layernorm before"
    path = write_control_vector(tmp_path / "v.gguf", ControlVectorFile("glm4", {1: torch.ones(32)}))
    with pytest.raises(ValueError, match=reason) as imported:
        import_control_vector(glm4(), path, tmp_path / "run")
    run = save_random_run(glm4(), tmp_path / "glm", RedConfig(use_scale=False, layers=[1]), seed=1)
    with pytest.raises(ValueError, match=reason) as exported:
        export_control_vector(run, tmp_path / "x.gguf", glm4())
    assert str(imported.value) == str(exported.value)
    assert not (tmp_path / "run").exists() and not (tmp_path / "x.gguf").exists()


def test_control_vector_commands(tmp_path):
    model_dir = save_tiny_causal_lm(tmp_path / "model")
    base = load_model(str(model_dir), device="cpu").model
    run = save_random_run(base, tmp_path / "run", RedConfig(use_scale=False, layers=[1]), seed=2)
    result = cli("control-vector", "export", "--edits", run, "--model", model_dir, "--out", tmp_path / "v.gguf")
    assert "1 directions of width 32 (layers 1)" in result.stdout and "--control-vector" in result.stdout
    cli(
        "control-vector",
        "import",
        tmp_path / "v.gguf",
        "--model",
        model_dir,
        "--out",
        tmp_path / "back",
        "--strength",
        2,
    )
    back = load_model(str(model_dir), device="cpu").model
    load_edits(back, tmp_path / "back")
    trained = red_vectors(base)["model.layers.1.mlp.down_proj.red_bias"]
    assert torch.allclose(red_vectors(back)["model.layers.1.mlp.down_proj.red_bias"], 2 * trained)
    full = save_random_run(load_model(str(model_dir), device="cpu").model, tmp_path / "full", RedConfig(layers=[1]))
    export = ("control-vector", "export", "--edits", full, "--model", model_dir, "--out", tmp_path / "f.gguf")
    refused = cli(*export, check=False)
    assert refused.returncode == 1 and "has a scale part" in refused.stderr
    assert (
        "export its bias only (layers 1 and up; add --bias-only), or train it bias-only (red-explorer train "
        "--no-scale)" in refused.stderr
    )
    dropped = cli(*export, "--bias-only")
    assert "warning: left out the scale vectors of 1 layers" in dropped.stderr


@pytest.mark.real_model
def test_a_bias_only_run_on_the_default_model_is_its_control_vector(default_model, tmp_path):
    model = copy.deepcopy(default_model.model)
    layers = list(range(1, model.config.num_hidden_layers))
    with_random_red(model, RedConfig(use_scale=False, layers=layers), seed=0)
    save_red(model, tmp_path / "run", base_model=default_model.base_name)
    exported = export_control_vector(tmp_path / "run", tmp_path / "v.gguf", default_model.model)
    vector = read_control_vector(exported.path)
    assert sorted(vector.directions) == layers and vector.width == model.config.hidden_size
    inputs = default_model.tokenizer("Representation editing, one vector per layer.", return_tensors="pt")["input_ids"]
    edited = logits(model, inputs)
    with red_disabled(model):
        base = logits(model, inputs)
        with control_vector_applied(model, vector.directions):
            steered = logits(model, inputs)
    assert (steered - edited).abs().max() < 2e-4 < 1.0 < (steered - base).abs().max()
