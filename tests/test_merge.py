"""Merging: folded weights reproduce the edited model; plain from_pretrained loads them."""

import copy
from types import SimpleNamespace

import pytest
import torch
from test_edit import SITE_CHOICES, VARIANTS, randomize
from tiny_models import ARCHITECTURES, DECODER, logits, sample_inputs, tiny_model
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig, LlamaForCausalLM

from red_explorer.core import merged as merged_module
from red_explorer.core.merged import merge_tolerance, save_merged, verify_merged
from red_explorer.core.method import MergeError
from red_explorer.core.red import merge as merge_module
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, red_disabled, red_vectors
from red_explorer.core.red.merge import fold, merge_and_unload, merge_red, unmerge_red

# (architecture, site) pairs where transformers hard-codes bias=False on the edited module
NO_BIAS_SLOT = {
    ("qwen2", "ffn"),
    ("qwen2", "attn"),
    ("mistral", "ffn"),
    ("mistral", "attn"),
    ("gemma", "ffn"),
    ("gemma3", "ffn"),
}
ENCODERS = {"bert", "roberta"}


def edited_model(architecture, variant, sites):
    model = tiny_model(architecture)
    attach_red(model, RedConfig.from_variant(variant, sites=sites))
    randomize(model)
    return model


def auto_class(architecture):
    return AutoModelForSequenceClassification if architecture in ENCODERS else AutoModelForCausalLM


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("sites", SITE_CHOICES, ids="+".join)
def test_merged_checkpoint_loads_plainly_and_matches(architecture, variant, sites, tmp_path):
    model, input_ids = edited_model(architecture, variant, sites), sample_inputs()
    expected = logits(model, input_ids)
    needs_bias_slot = variant != "scale" and any((architecture, site) in NO_BIAS_SLOT for site in sites)
    if needs_bias_slot:
        with pytest.raises(MergeError, match="no bias slot"):
            save_merged(model, tmp_path / "merged")
        return
    save_merged(model, tmp_path / "merged")
    plain = auto_class(architecture).from_pretrained(tmp_path / "merged").eval()
    assert not any("red_" in name for name in plain.state_dict())
    assert (logits(plain, input_ids) - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_in_place_merge_and_unmerge(architecture):
    model, input_ids = edited_model(architecture, "full", ["ffn", "attn"]), sample_inputs()
    edited = logits(model, input_ids)
    with red_disabled(model):
        base = logits(model, input_ids)
    original = {name: value.clone() for name, value in model.state_dict().items()}
    merge_red(model)
    torch.testing.assert_close(logits(model, input_ids), edited, rtol=1e-5, atol=1e-5)
    unmerge_red(model)
    assert all(torch.equal(value, original[name]) for name, value in model.state_dict().items())
    assert torch.equal(logits(model, input_ids), edited)
    with red_disabled(model):
        assert torch.equal(logits(model, input_ids), base)


def test_llama_bias_merge_uses_mlp_bias_slot(tmp_path):
    model = edited_model("llama", "full", ["ffn"])
    save_merged(model, tmp_path)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert plain.config.mlp_bias is True
    layer = plain.model.layers[0].mlp
    assert torch.equal(layer.gate_proj.bias, torch.zeros_like(layer.gate_proj.bias))
    expected_bias = model.model.layers[0].mlp.down_proj.red_bias
    torch.testing.assert_close(layer.down_proj.bias, expected_bias.detach())


def test_fold_matches_the_formula_for_linear_and_conv1d():
    generator = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(3, 5, generator=generator), torch.randn(3, generator=generator)
    scale, shift = torch.randn(3, generator=generator), torch.randn(3, generator=generator)
    new_weight, new_bias = fold(weight, bias, scale, shift, transposed=False)
    torch.testing.assert_close(new_weight, torch.diag(scale) @ weight)
    torch.testing.assert_close(new_bias, scale * bias + shift)
    conv_weight, _ = fold(weight.T, bias, scale, shift, transposed=True)
    torch.testing.assert_close(conv_weight, (torch.diag(scale) @ weight).T)


def test_scale_only_merge_on_model_without_bias_slot(tmp_path):
    model, input_ids = edited_model("qwen2", "scale", ["ffn", "attn"]), sample_inputs()
    save_merged(model, tmp_path)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert (logits(plain, input_ids) - logits(model, input_ids)).abs().max() < 1e-4


def test_loaded_edits_merge_like_trained_ones(tmp_path):
    from red_explorer.core.registry import load_edits, save_edits

    model = edited_model("llama", "full", ["ffn", "attn"])
    save_edits(model, tmp_path / "edits", "tiny")
    fresh = tiny_model("llama")
    load_edits(fresh, tmp_path / "edits")
    save_merged(fresh, tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert (logits(plain, sample_inputs()) - logits(model, sample_inputs())).abs().max() < 1e-4


def trained_like_llama(dtype: torch.dtype, layers: int = 8) -> torch.nn.Module:
    """A Llama with a trained-looking RED edit: scale 1 ± 0.05, bias ± 0.05 on every FFN output, in ``dtype``."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**(DECODER | {"num_hidden_layers": layers}))).to(dtype).eval()
    attach_red(model, RedConfig())
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, vector in red_vectors(model).items():
            noise = torch.randn(vector.shape, generator=generator) * 0.05
            vector.copy_(noise + (1.0 if name.endswith("red_scale") else 0.0))
    return model


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_a_trained_scale_merges_within_the_stated_rounding_tolerance(dtype, tmp_path):
    model = trained_like_llama(dtype)
    tolerance = merge_tolerance(dtype, 8)
    assert tolerance == pytest.approx(4 * 8 * torch.finfo(dtype).eps)
    save_merged(model, tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=dtype).eval()
    assert plain.config.mlp_bias is True
    assert 0 < verify_merged(model, plain) <= tolerance  # the fold rounds, within the tolerance


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_a_wrong_fold_is_still_refused(dtype, tmp_path, monkeypatch):
    """One layer's bias left out of the fold: in bfloat16 on a deep model its logits alone could not tell."""
    model, real, calls = trained_like_llama(dtype), merge_module.fold, []

    def layer_four_loses_its_bias(weight, bias, scale, shift, transposed):
        calls.append(shift)
        return real(weight, bias, scale, None if len(calls) == 5 else shift, transposed)

    monkeypatch.setattr(merge_module, "fold", layer_four_loses_its_bias)
    with pytest.raises(MergeError, match=r"the merged model\.layers\.4\.mlp\.down_proj\.bias is not the folded edit"):
        save_merged(model, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_a_merged_model_wrong_elsewhere_is_refused_by_its_logits(dtype, tmp_path, monkeypatch):
    def doubled_final_norm(edited):
        merged = merge_and_unload(edited)
        merged.model.norm.weight.data.mul_(2)
        return merged

    monkeypatch.setattr(merged_module, "merge_and_unload", doubled_final_norm)
    with pytest.raises(MergeError, match=r"differs from the edited one by 1\.0e\+00 of the logit scale.* 8 layers"):
        save_merged(trained_like_llama(dtype), tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_the_merge_check_reads_the_median_position():
    """One numerically unstable position (bfloat16 SmolLM2 has such) does not decide the check; most positions do."""

    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.anchor, self.config, self.fixed = torch.nn.Parameter(torch.zeros(1)), LlamaConfig(vocab_size=5), logits

        def forward(self, input_ids):
            return SimpleNamespace(logits=self.fixed)

    edited = torch.full((2, 12, 5), 10.0)
    one_position = edited.clone()
    one_position[1, 2] += 40.0
    assert verify_merged(Fixed(edited), Fixed(one_position)) == 0.0
    every_position = edited + 0.5
    assert verify_merged(Fixed(edited), Fixed(every_position)) == pytest.approx(0.05)


@pytest.mark.real_model
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_a_trained_sized_edit_on_the_default_model_merges(default_model, dtype, tmp_path):
    """Scale 1 ± 0.3 on 30 layers: float32 rounding reached 1.1e-5 of the largest logit, above the old fixed 1e-5."""
    model = copy.deepcopy(default_model.model).to(dtype)
    attach_red(model, RedConfig())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, vector in red_vectors(model).items():
            noise = torch.randn(vector.shape, generator=generator) * 0.3
            vector.copy_(noise + (1.0 if name.endswith("red_scale") else 0.0))
    save_merged(model, tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=dtype).eval()
    assert 0 < verify_merged(model, plain) <= merge_tolerance(dtype, 30)
