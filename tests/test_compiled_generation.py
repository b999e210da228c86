"""Compiled generation (``DecodingSettings.compile``, ``generate --compile``): a static KV cache and a compiled
forward give the eager greedy tokens, for the base and with RED attached, disabled and detached; clear refusals."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from test_cli import cli
from tiny_models import save_tiny_causal_lm, tiny_model, tiny_tokenizer

from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, detach_red, red_disabled, red_vectors
from red_explorer.core.red.saving import save_red
from red_explorer.data.render import encode_prompt
from red_explorer.engine.batched_compare import compare_batched
from red_explorer.engine.compiled_generation import compiled_generation
from red_explorer.engine.generation import Contender, DecodingSettings, chat_prompt, compare_generations
from red_explorer.models.loading import load_model

PROMPT = "name[the eagle] | food[italian]"
EAGER = DecodingSettings(max_new_tokens=8)
COMPILED = replace(EAGER, compile="default")


def nudge(model, seed: int = 3) -> None:
    """A trained-looking RED edit: scale 1 + noise, bias noise (enough to change the greedy tokens)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, vector in red_vectors(model).items():
            noise = torch.randn(vector.shape, generator=generator) * 0.3
            vector.copy_(noise + (1.0 if name.endswith("red_scale") else 0.0))


def greedy_ids(model, input_ids: torch.Tensor, settings: DecodingSettings) -> list[int]:
    """The new token ids, generated as ``generate_one`` generates."""
    with torch.no_grad(), compiled_generation(model, settings.compile) as compiled:
        output = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            pad_token_id=3,
            **settings.generate_kwargs(),
            **compiled,
        )
    return output[0, input_ids.shape[1] :].tolist()


def test_compiled_greedy_tokens_equal_eager_for_the_base_and_red_and_detaching_restores_the_base(tmp_path):
    from torch._dynamo.utils import counters

    loaded = load_model(str(save_tiny_causal_lm(tmp_path / "model")), device="cpu")
    model, tokenizer = loaded.model, loaded.tokenizer
    prompt = chat_prompt(tokenizer, PROMPT)
    input_ids = torch.tensor([encode_prompt(tokenizer, prompt)])  # as generate_one encodes it
    with torch.no_grad():
        before = model(input_ids=input_ids).logits
    counters.clear()
    base = greedy_ids(model, input_ids, EAGER)
    assert len(base) == 8 and greedy_ids(model, input_ids, COMPILED) == base

    attach_red(model, RedConfig())
    nudge(model)
    edited = greedy_ids(model, input_ids, EAGER)
    assert edited != base and greedy_ids(model, input_ids, COMPILED) == edited  # a new graph, RED's hooks in it
    with red_disabled(model):
        assert greedy_ids(model, input_ids, COMPILED) == base  # not the edited graph replayed
    contenders = [Contender("base", model, lambda: red_disabled(model)), Contender("RED", model)]
    compiled_rows = compare_generations(contenders, tokenizer, [prompt], COMPILED)  # the library's path
    eager_rows = compare_generations(contenders, tokenizer, [prompt], EAGER)
    assert [row.text for row in compiled_rows] == [row.text for row in eager_rows]
    assert compiled_rows[0].text != compiled_rows[1].text and [row.new_tokens for row in compiled_rows] == [8, 8]

    detach_red(model)
    with torch.no_grad():
        assert torch.equal(model(input_ids=input_ids).logits, before)  # bit for bit the base
    assert greedy_ids(model, input_ids, COMPILED) == base
    assert counters["stats"]["unique_graphs"] >= 3 and not counters["graph_break"]  # base, RED, disabled: no breaks


def test_cli_generate_with_compile_gives_the_eager_texts_for_the_base_and_a_saved_red_run(tmp_path):
    model_dir = save_tiny_causal_lm(tmp_path / "model")
    loaded = load_model(str(model_dir), device="cpu")
    attach_red(loaded.model, RedConfig())
    nudge(loaded.model)
    save_red(loaded.model, tmp_path / "red")
    args = ["generate", "--model", model_dir, "--edits", tmp_path / "red", "--prompt", PROMPT, "--max-new-tokens", 8]
    eager = json.loads(cli(*args, "--json").stdout)
    compiled = json.loads(cli(*args, "--compile", "default", "--json").stdout)
    assert [row["text"] for row in compiled] == [row["text"] for row in eager]
    assert eager[0]["method"] == "base" and eager[0]["text"] != eager[1]["text"]
    assert cli(*args, "--compile", "fast", check=False).returncode == 2  # argparse: invalid choice


def test_bad_compile_values_and_models_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match=r"compile must be one of default, reduce-overhead, max-autotune"):
        DecodingSettings(compile="fast")
    with pytest.raises(ValueError, match=r"BertForSequenceClassification cannot generate with a static KV cache"):
        with compiled_generation(tiny_model("bert"), "default"):
            pass
    llama = tiny_model("llama")
    with compiled_generation(llama, "") as eager, compiled_generation(llama, "reduce-overhead") as compiled:
        assert eager == {}  # off: generate's arguments exactly as before
        assert compiled["cache_implementation"] == "static" and compiled["compile_config"].mode == "reduce-overhead"
    tokenizer = tiny_tokenizer(["name the eagle food italian"])
    with pytest.raises(ValueError, match=r"compiled generation decodes one prompt per call"):
        compare_batched(llama, tokenizer, [PROMPT], [], COMPILED)
