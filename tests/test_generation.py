"""Side-by-side generation: identical decoding, parity with the base, overlap scores."""

import pytest
import torch
from test_edit import randomize
from tiny_models import save_tiny_causal_lm

from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, red_disabled
from red_explorer.engine.generation import Contender, DecodingSettings, chat_prompt, compare_generations, rouge_l
from red_explorer.models.loading import load_model


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_model(str(save_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")), device="cpu")


def edited_copy(loaded):
    import copy

    model = copy.deepcopy(loaded.model)
    attach_red(model, RedConfig())
    randomize(model)
    return model


def test_red_disabled_generates_exactly_the_base_tokens(loaded):
    model = edited_copy(loaded)
    prompts = [chat_prompt(loaded.tokenizer, "name[the eagle] | food[italian]")]
    settings = DecodingSettings(max_new_tokens=12)
    base, disabled, edited = compare_generations(
        [
            Contender("base", loaded.model),
            Contender("disabled", model, lambda: red_disabled(model)),
            Contender("RED", model),
        ],
        loaded.tokenizer,
        prompts,
        settings,
    )
    assert base.text == disabled.text and base.new_tokens == disabled.new_tokens == 12
    assert edited.text != base.text
    assert [g.method for g in (base, disabled, edited)] == ["base", "disabled", "RED"]
    assert all(g.seconds > 0 and g.tokens_per_second > 0 for g in (base, disabled, edited))


def test_references_get_a_rouge_l_score(loaded):
    prompts = [chat_prompt(loaded.tokenizer, "hello"), chat_prompt(loaded.tokenizer, "world")]
    rows = compare_generations(
        [Contender("base", loaded.model)],
        loaded.tokenizer,
        prompts,
        DecodingSettings(max_new_tokens=4),
        references=["a reference", None],
    )
    assert rows[0].reference == "a reference" and 0.0 <= rows[0].rouge_l <= 1.0
    assert rows[1].rouge_l is None


def test_rouge_l_values():
    assert rouge_l("the eagle is a pub", "the eagle is a pub") == pytest.approx(1.0)
    assert rouge_l("completely different words", "the eagle is a pub") == 0.0
    assert 0 < rouge_l("the eagle is cheap", "the eagle is a pub") < 1


def test_sampling_is_reproducible_with_a_seed(loaded):
    prompt = [chat_prompt(loaded.tokenizer, "name[aromi]")]
    settings = DecodingSettings(max_new_tokens=8, do_sample=True, temperature=1.5, seed=3)
    first = compare_generations([Contender("base", loaded.model)], loaded.tokenizer, prompt, settings)
    second = compare_generations([Contender("base", loaded.model)], loaded.tokenizer, prompt, settings)
    assert first[0].text == second[0].text


def test_decoding_settings_are_passed_and_validated():
    kwargs = DecodingSettings(repetition_penalty=1.1, no_repeat_ngram_size=5).generate_kwargs()
    assert kwargs == {"max_new_tokens": 64, "do_sample": False, "repetition_penalty": 1.1, "no_repeat_ngram_size": 5}
    with pytest.raises(ValueError, match="max_new_tokens"):
        DecodingSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        DecodingSettings(top_p=0)


def test_chat_prompt_uses_the_template(loaded):
    text = chat_prompt(loaded.tokenizer, "hi there")
    assert text.startswith("<s> user : hi there </s>") and text.endswith("assistant : ")
    loaded.tokenizer.chat_template, template = None, loaded.tokenizer.chat_template
    try:
        assert chat_prompt(loaded.tokenizer, "hi there") == "hi there\n"  # the plain training format
    finally:
        loaded.tokenizer.chat_template = template
    assert torch.is_tensor(loaded.tokenizer("x", return_tensors="pt")["input_ids"])
