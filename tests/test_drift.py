"""Token-level drift: per-token KL(edited ‖ base) by hand, the top changed predictions, TARE routing, refusals."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from explore_helpers import cli, save_random_run, with_random_red
from tiny_models import logits, sample_corpus, save_tiny_causal_lm, tiny_model, tiny_tokenizer
from tokenizers import processors

from red_explorer.core.red.edit import red_disabled
from red_explorer.core.tare.config import TareConfig
from red_explorer.core.tare.edit import attach_tare, tare_parameters
from red_explorer.core.tare.routing import tare_routing
from red_explorer.engine.generation import Contender, DecodingSettings, chat_prompt, generate_one
from red_explorer.explore.drift import encode, token_drift
from red_explorer.models.loading import load_model

TEXT = "name aromi eattype coffee shop food chinese"


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer(sample_corpus())


def test_drift_equals_a_hand_computed_kl(tokenizer):
    model = with_random_red(tiny_model("llama"), seed=5)
    drift = token_drift(model, tokenizer, TEXT, top_k=3)
    input_ids, _ = encode(tokenizer, TEXT)
    with red_disabled(model):
        base = logits(model, input_ids)[0].double().softmax(-1)  # (T, V)
    edited = logits(model, input_ids)[0].double().softmax(-1)
    by_hand = (edited * (edited.log() - base.log())).sum(-1)
    assert drift.token_ids == input_ids[0].tolist() and len(drift.tokens) == len(drift.kl)
    assert torch.allclose(torch.tensor(drift.kl, dtype=torch.float64), by_hand, rtol=1e-4, atol=1e-7)
    change = edited - base
    for position in range(len(drift.kl)):
        rise, fall = drift.rises[position][0], drift.falls[position][0]
        assert rise.token_id == int(change[position].argmax()) and fall.token_id == int(change[position].argmin())
        assert rise.edited_probability == pytest.approx(float(edited[position, rise.token_id]), abs=1e-6)
        assert fall.base_probability == pytest.approx(float(base[position, fall.token_id]), abs=1e-6)
        assert len(drift.rises[position]) == 3 and rise.token == tokenizer.decode([rise.token_id])
    assert drift.routing_sites is None and json.dumps(drift.to_dict())


def test_drift_marks_the_prompt_tokens(tokenizer):
    model = with_random_red(tiny_model("llama"), seed=5)
    drift = token_drift(model, tokenizer, "food chinese", prompt="name aromi")
    prompt_length = len(tokenizer("name aromi")["input_ids"])
    assert drift.is_prompt == [index < prompt_length for index in range(len(drift.token_ids))]
    assert sum(drift.is_prompt) == prompt_length > 0


def test_tare_drift_carries_the_editor_choice_per_token(tokenizer):
    torch.manual_seed(0)
    model = tiny_model("llama")
    attach_tare(model, TareConfig(num_editors=3, top_k=2))
    with torch.no_grad():
        for name, parameter in tare_parameters(model).items():
            if name.endswith("tare_bias"):
                parameter.normal_(0, 0.3)
    drift = token_drift(model, tokenizer, TEXT)
    routing = tare_routing(model, encode(tokenizer, TEXT)[0])
    assert drift.routing_sites == routing.site_names
    tokens = len(drift.token_ids)
    assert len(drift.editor_choice) == tokens and len(drift.editor_choice[0]) == len(routing.site_names)
    assert drift.editor_choice[2][1] == routing.selected[1, 2].tolist()
    assert drift.editor_weights[2][1] == pytest.approx(routing.weights[1, 2].tolist())
    assert max(drift.kl) > 0


def test_lora_drift_and_full_fine_tuning_refusal(tokenizer):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_model("llama"), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    assert max(token_drift(model, tokenizer, TEXT).kl) > 0
    with pytest.raises(ValueError, match="full fine-tuning has no base behaviour"):
        token_drift(tiny_model("llama"), tokenizer, TEXT)


def test_explore_drift_prints_the_record(tmp_path):
    model_dir = save_tiny_causal_lm(tmp_path / "model")
    run = save_random_run(load_model(str(model_dir), device="cpu").model, tmp_path / "run", seed=2)
    common = ("explore", "drift", "--model", model_dir, "--edits", run, "--text", "food chinese", "--top-k", 2)
    record = json.loads(cli(*common, "--prompt", "name aromi").stdout)
    assert len(record["kl"]) == len(record["tokens"]) == len(record["rises"]) and len(record["rises"][0]) == 2
    assert record["is_prompt"][0] is True and record["is_prompt"][-1] is False and max(record["kl"]) > 0
    at_zero = json.loads(cli(*common, "--strength", 0).stdout)
    assert at_zero["kl"] == [0.0] * len(at_zero["kl"])


def starts_with_bos(tokenizer):
    """The tokenizer with a post-processor that writes BOS before every text, as Llama's does."""
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)]
    )
    return tokenizer


@pytest.mark.parametrize("chat", [True, False])
def test_drift_measures_the_ids_generation_feeds(chat):
    tokenizer = starts_with_bos(tiny_tokenizer(sample_corpus(), chat=chat))
    assert tokenizer("name")["input_ids"][0] == tokenizer.bos_token_id
    model, fed = with_random_red(tiny_model("llama"), seed=3), []
    generate = model.generate
    model.generate = lambda input_ids, **kwargs: fed.append(input_ids[0].tolist()) or generate(input_ids, **kwargs)
    prompt = chat_prompt(tokenizer, "name aromi")
    generate_one(Contender("RED", model), tokenizer, prompt, DecodingSettings(max_new_tokens=2))
    drift = token_drift(model, tokenizer, "food chinese", prompt)
    prompt_ids = drift.token_ids[: sum(drift.is_prompt)]
    assert prompt_ids == fed[0]
    assert prompt_ids[0] == tokenizer.bos_token_id and prompt_ids[1] != tokenizer.bos_token_id  # one BOS
    assert drift.token_ids[len(prompt_ids) :] == tokenizer("food chinese", add_special_tokens=False)["input_ids"]
