"""Regression tests of library bugs: TARE routing, mixed-width sites, merges, offload, partial edits, prompts."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers as tf
from data_helpers import build_tokenizer, write
from test_edit import randomize as randomize_red
from test_tare import randomize as randomize_tare
from tiny_models import DECODER, logits, sample_inputs, tiny_model
from tokenizers import processors
from torch import nn
from transformers import AutoModelForCausalLM

from red_explorer.core.merged import save_merged
from red_explorer.core.method import MergeError
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, get_state, has_red, red_vectors
from red_explorer.core.red.merge import merge_and_unload, merge_red
from red_explorer.core.registry import load_edits, save_edits
from red_explorer.core.sites import unedited_layers
from red_explorer.core.tare.config import TareConfig
from red_explorer.core.tare.edit import attach_tare, has_tare, tare_parameters
from red_explorer.data.render import prompt_text
from red_explorer.data.tables import DataConfig, load_table
from red_explorer.data.tokenize import tokenize_dataset
from red_explorer.engine.generation import Contender, DecodingSettings, chat_prompt, generate_one

# ---------------------------------------------------------------- 3. the TARE selector learns for every k


@pytest.mark.parametrize("top_k", [1, 2, 3, 4])
def test_tare_selector_gets_a_gradient_for_every_k_and_starts_as_the_identity(top_k):
    model, input_ids = tiny_model("llama"), sample_inputs()
    expected = logits(model, input_ids)
    attach_tare(model, TareConfig(num_editors=4, top_k=top_k, sites=["ffn", "attn"]))
    assert torch.equal(logits(model, input_ids), expected)  # untrained: exactly the identity
    randomize_tare(model)
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    selectors = {name: tensor for name, tensor in tare_parameters(model).items() if name.endswith("tare_selector")}
    assert len(selectors) == 4
    assert all(selector.grad is not None and selector.grad.abs().sum() > 0 for selector in selectors.values())


# ---------------------------------------------------------------- 5. custom sites of different widths


MIXED_WIDTHS = ["model.layers.0.mlp.down_proj", "model.layers.0.mlp.up_proj"]  # hidden 32, intermediate 64


@pytest.mark.parametrize("method", ["red", "tare"])
def test_custom_sites_of_different_widths_save_and_load_exactly(method, tmp_path):
    model, input_ids = tiny_model("llama"), sample_inputs()
    if method == "red":
        attach_red(model, RedConfig(target_modules=MIXED_WIDTHS))
        randomize_red(model)
        widths = {vector.shape[-1] for vector in red_vectors(model).values()}
    else:
        attach_tare(model, TareConfig(target_modules=MIXED_WIDTHS))
        randomize_tare(model)
        widths = {tensor.shape[-1] for tensor in tare_parameters(model).values()}
    assert widths == {32, 64}
    save_edits(model, tmp_path / "edits", "tiny")
    fresh = tiny_model("llama")
    load_edits(fresh, tmp_path / "edits")
    assert torch.equal(logits(fresh, input_ids), logits(model, input_ids))


# ---------------------------------------------------------------- 6. save_merged after merge_red folds once


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])  # the site has a bias of its own / has none
def test_save_merged_after_an_in_place_merge_matches_the_edited_model(architecture, tmp_path):
    model, input_ids = tiny_model(architecture), sample_inputs()
    attach_red(model, RedConfig())
    randomize_red(model)
    expected = logits(model, input_ids)
    merge_red(model)
    save_merged(model, tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert (logits(plain, input_ids) - expected).abs().max().item() < 1e-4
    torch.testing.assert_close(logits(model, input_ids), expected, rtol=1e-5, atol=1e-5)  # still merged, same


# ---------------------------------------------------------------- 7. TARE refuses offloaded weights


@pytest.mark.parametrize("method", ["red", "tare"])
def test_offloaded_weights_are_refused_and_the_model_left_clean(method):
    model = tiny_model("llama")
    module = model.model.layers[1].mlp.down_proj
    module.weight = nn.Parameter(torch.empty(module.weight.shape, device="meta"))  # what accelerate offload leaves
    attach, config = (attach_red, RedConfig()) if method == "red" else (attach_tare, TareConfig())
    with pytest.raises(ValueError, match="offload"):
        attach(model, config)
    assert not has_red(model) and not has_tare(model)
    assert not any(name.rsplit(".", 1)[-1].startswith(("red_", "tare_")) for name, _ in model.named_parameters())
    assert all(parameter.requires_grad for parameter in model.parameters())  # not frozen either


# ---------------------------------------------------------------- 8a. layers an edit cannot reach are named


def tiny_moe(kind: str = "qwen2_moe") -> nn.Module:
    """4 layers; layers 1 and 3 are mixture-of-experts blocks (no dense mlp.down_proj)."""
    torch.manual_seed(0)
    sizes = DECODER | {"num_hidden_layers": 4, "num_experts_per_tok": 2}
    if kind == "qwen2_moe":
        config = tf.Qwen2MoeConfig(
            **sizes, num_experts=4, moe_intermediate_size=16, shared_expert_intermediate_size=32, decoder_sparse_step=2
        )
        return tf.Qwen2MoeForCausalLM(config).eval()
    config = tf.Qwen3MoeConfig(**sizes, num_experts=4, moe_intermediate_size=16, decoder_sparse_step=2, head_dim=8)
    return tf.Qwen3MoeForCausalLM(config).eval()


@pytest.mark.parametrize("kind", ["qwen2_moe", "qwen3_moe"])
@pytest.mark.parametrize("method", ["red", "tare"])
def test_mixture_of_experts_layers_are_named_in_a_warning(kind, method):
    model, input_ids = tiny_moe(kind), sample_inputs()
    expected = logits(model, input_ids)
    attach, config = (attach_red, RedConfig()) if method == "red" else (attach_tare, TareConfig())
    with pytest.warns(UserWarning, match=r"2 of 4 layers \(model\.layers\.1, model\.layers\.3\).*target_modules"):
        sites = attach(model, config)
    assert [site.layer_index for site in sites] == [0, 2]
    assert unedited_layers(model, config if method == "red" else config.site_config()) == [1, 3]
    assert torch.equal(logits(model, input_ids), expected)  # the edit starts as the identity


def test_the_warning_names_modules_to_target_and_following_it_edits_every_layer():
    model = tiny_moe("qwen2_moe")
    with pytest.warns(UserWarning) as caught:
        attach_red(model, RedConfig())
    assert "model.layers.1.mlp.shared_expert.down_proj" in str(caught[0].message)
    fresh = tiny_moe("qwen2_moe")
    target = r"model\.layers\.\d+\.mlp\.(shared_expert\.)?down_proj"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sites = attach_red(fresh, RedConfig(target_modules=target))
    assert sorted(site.layer_index for site in sites) == [0, 1, 2, 3]


def test_dense_models_attach_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attach_red(tiny_model("llama"), RedConfig(sites=["ffn", "attn"]))
        attach_tare(tiny_model("gpt2"), TareConfig())
    assert unedited_layers(tiny_model("bert"), RedConfig(sites=["ffn", "attn"])) == []


def test_an_all_experts_model_says_so():
    config = tf.MixtralConfig(**(DECODER | {"num_local_experts": 4, "num_experts_per_tok": 2}))
    with pytest.raises(ValueError, match=r"mixtures of experts.*sites=\['attn'\].*target_modules"):
        attach_red(tf.MixtralForCausalLM(config), RedConfig())


def test_an_all_experts_model_still_has_the_attention_site():
    config = tf.MixtralConfig(**(DECODER | {"num_local_experts": 4, "num_experts_per_tok": 2}))
    torch.manual_seed(0)
    model, input_ids = tf.MixtralForCausalLM(config).eval(), sample_inputs()
    expected = logits(model, input_ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every layer has its attention output: nothing is left unedited
        sites = attach_red(model, RedConfig(sites=["attn"]))
    assert [site.name for site in sites] == ["model.layers.0.self_attn.o_proj", "model.layers.1.self_attn.o_proj"]
    assert torch.equal(logits(model, input_ids), expected)


# ---------------------------------------------------------------- 8b. tied embeddings are never folded into


def lm_head_edit(tied: bool) -> nn.Module:
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(tf.LlamaConfig(**DECODER, tie_word_embeddings=tied)).eval()
    attach_red(model, RedConfig(target_modules=["lm_head"]))
    randomize_red(model)
    return model


def test_merging_into_a_tied_lm_head_is_refused_and_changes_nothing():
    model, input_ids = lm_head_edit(tied=True), sample_inputs()
    assert model.lm_head.weight is model.model.embed_tokens.weight  # precondition: tied
    embeddings, edited = model.model.embed_tokens.weight.detach().clone(), logits(model, input_ids)
    with pytest.raises(MergeError, match=r"'lm_head\.weight' is tied to 'model\.embed_tokens\.weight'"):
        merge_red(model)
    with pytest.raises(MergeError, match="tie_word_embeddings"):
        merge_and_unload(model)
    assert torch.equal(model.model.embed_tokens.weight, embeddings)
    assert get_state(model).merged_backup is None
    assert torch.equal(logits(model, input_ids), edited)


def test_an_untied_lm_head_still_merges_exactly():
    model, input_ids = lm_head_edit(tied=False), sample_inputs()
    embeddings, edited = model.model.embed_tokens.weight.detach().clone(), logits(model, input_ids)
    merge_red(model)
    torch.testing.assert_close(logits(model, input_ids), edited, rtol=1e-5, atol=1e-5)
    assert torch.equal(model.model.embed_tokens.weight, embeddings)


# ---------------------------------------------------------------- 8c. generation prompts as training rendered


class RecordingModel(nn.Module):
    """Records the prompt ids ``generate`` receives and answers with one token."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.prompts: list[list[int]] = []

    def generate(self, input_ids, attention_mask, **kwargs):
        self.prompts.append(input_ids[0].tolist())
        return torch.cat([input_ids, input_ids[:, :1]], dim=1)


def appends_eos(tokenizer):
    """A tokenizer whose special tokens wrap every text: '<s> text </s>'."""
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tokenizer.bos_token_id), ("</s>", tokenizer.eos_token_id)]
    )
    return tokenizer


@pytest.mark.parametrize(
    "make_tokenizer",
    [
        lambda: build_tokenizer(),
        lambda: build_tokenizer(bos=True),
        lambda: appends_eos(build_tokenizer()),
        lambda: build_tokenizer(chat=True),
    ],
    ids=["plain", "plain-bos", "plain-bos-eos", "chat-template"],
)
def test_generation_prompt_equals_the_prompt_part_training_saw(make_tokenizer, tmp_path):
    tokenizer = make_tokenizer()
    rows = [{"prompt": "What is the capital of France?", "response": "Paris is the capital."}] * 4
    config = DataConfig(max_length=256, validation_fraction=0.5)
    splits, detected = load_table(write(tmp_path / "rows.jsonl", rows), config)
    encoded = tokenize_dataset(splits, detected, tokenizer, config)[0]["train"][0]
    cut = next(index for index, label in enumerate(encoded["labels"]) if label != -100)
    prompt = chat_prompt(tokenizer, rows[0]["prompt"])
    assert prompt == prompt_text(splits["train"][0], detected, tokenizer)
    recorder = RecordingModel()
    generate_one(Contender("base", recorder), tokenizer, prompt, DecodingSettings(max_new_tokens=1))
    assert recorder.prompts == [encoded["input_ids"][:cut]]
