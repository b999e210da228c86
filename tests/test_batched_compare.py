"""The base and many saved runs in one generate call: token for token what one call per run gives."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_models import logits, sample_corpus, sample_inputs, tiny_model, tiny_tokenizer

from red_explorer.core.red.bank import swap_edits
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import SCALE, attach_red, detach_red, red_vectors
from red_explorer.core.registry import MethodSpec, apply_method, load_edits, save_edits, save_method
from red_explorer.engine.batched_compare import BASE, SavedRun, compare_batched, left_padded
from red_explorer.engine.generation import Contender, DecodingSettings, generate_one
from red_explorer.models.loading import LoadedModel
from red_explorer.runs.store import RunStore

PROMPTS = ["name[aromi] food", "name[the eagle] eattype[coffee shop] food[french] area[riverside]"]
SETTINGS = DecodingSettings(max_new_tokens=8)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only contend


@pytest.fixture(scope="module")
def base():
    return tiny_model("llama"), tiny_tokenizer(sample_corpus())


def saved_red(model, folder, variant: str, sites=("ffn",), seed: int = 0) -> SavedRun:
    """A RED run of ``variant`` with a visible edit (scale 1 + N(0, 4), bias N(0, 0.01)), saved to ``folder``."""
    attach_red(model, RedConfig.from_variant(variant, sites=list(sites)))
    generator = torch.Generator().manual_seed(seed)
    vectors = {}
    for name, vector in red_vectors(model).items():
        noise = torch.randn(vector.shape, generator=generator)
        vectors[name] = 1 + 4.0 * noise if name.endswith(SCALE) else 0.01 * noise
    swap_edits(model, vectors)
    save_edits(model, folder)
    detach_red(model)
    return SavedRun(f"RED {variant} ({'+'.join(sites)})", folder)


def saved_method(model, folder, spec: MethodSpec, seed: int) -> SavedRun:
    """A LoRA or TARE run with its trainable tensors moved off the identity, saved to ``folder``."""
    trained = apply_method(copy.deepcopy(model), spec, "causal-lm")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in trained.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)
    save_method(trained, spec, folder)
    return SavedRun(spec.label, folder)


@pytest.fixture(scope="module")
def red_runs(base, tmp_path_factory):
    model, _ = base
    folder = tmp_path_factory.mktemp("red")
    return [
        saved_red(model, folder / variant, variant, seed=index)
        for index, variant in enumerate(("full", "scale", "bias"))
    ]


def test_base_and_three_red_runs_in_one_call_equal_one_call_each(base, red_runs):
    model, tokenizer = base
    assert (left_padded(tokenizer, PROMPTS, torch.device("cpu"))["attention_mask"] == 0).any()  # left padding
    batched = compare_batched(model, tokenizer, PROMPTS, red_runs, SETTINGS)
    separate = compare_batched(model, tokenizer, PROMPTS, red_runs, SETTINGS, batch=False)
    labels = [BASE] + [run.label for run in red_runs]
    assert batched.batched == labels and batched.separate == {} and len(batched.calls) == 1
    assert batched.calls[0].rows == 8 and batched.calls[0].batched
    assert len(separate.calls) == 4 and all(call.rows == 2 for call in separate.calls)
    assert batched.token_ids == separate.token_ids
    assert [generation.method for generation in batched.generations] == labels * 2
    for index in range(len(PROMPTS)):  # every edit changes the greedy continuation
        rows = batched.token_ids[index * 4 : (index + 1) * 4]
        assert len({tuple(ids) for ids in rows}) == 4


def test_batched_rows_equal_each_run_generating_alone(base, red_runs):
    model, tokenizer = base
    batched = compare_batched(model, tokenizer, PROMPTS, red_runs, SETTINGS)
    folders = {run.label: run.folder for run in red_runs}
    for generation in batched.generations:
        alone = copy.deepcopy(model)
        if generation.method != BASE:
            load_edits(alone, folders[generation.method])
        reference = generate_one(Contender(generation.method, alone), tokenizer, generation.prompt, SETTINGS)
        assert generation.text == reference.text and generation.new_tokens == reference.new_tokens


def test_lora_shares_the_call_while_tare_and_other_sites_fall_back(base, red_runs, tmp_path):
    model, tokenizer = base
    before = logits(model, sample_inputs())
    lora = saved_method(model, tmp_path / "lora", MethodSpec("lora", rank=4), seed=1)
    tare = saved_method(model, tmp_path / "tare", MethodSpec("tare"), seed=2)
    attn = saved_red(model, tmp_path / "attn", "full", sites=("attn",), seed=5)
    runs = [*red_runs, lora, tare, attn]
    batched = compare_batched(model, tokenizer, PROMPTS, runs, SETTINGS)
    separate = compare_batched(model, tokenizer, PROMPTS, runs, SETTINGS, batch=False)
    assert batched.batched == [BASE] + [run.label for run in red_runs] + [lora.label]
    assert set(batched.separate) == {tare.label, attn.label} and "other modules" in batched.separate[attn.label]
    assert [call.labels for call in batched.calls[1:]] == [[tare.label], [attn.label]]
    assert batched.token_ids == separate.token_ids
    rows = list(zip(batched.generations, batched.token_ids, strict=True))
    assert [ids for g, ids in rows if g.method == lora.label] != [ids for g, ids in rows if g.method == BASE]
    assert torch.equal(logits(model, sample_inputs()), before)  # the base is plain again
    assert not hasattr(model, "_edit_state") and not hasattr(model, "peft_config")


def test_calls_report_what_was_timed(base, red_runs):
    model, tokenizer = base
    result = compare_batched(model, tokenizer, PROMPTS[:1], red_runs[:1], SETTINGS, fixed_length=True)
    call = result.calls[0]
    assert call.seconds > 0 and call.new_tokens == 2 * SETTINGS.max_new_tokens
    assert "warm-up" in call.measured and "exactly" in call.measured
    assert all(generation.seconds == call.seconds for generation in result.generations)


def test_labels_must_be_distinct_and_the_base_plain(base, red_runs):
    model, tokenizer = base
    with pytest.raises(ValueError, match="distinct"):
        compare_batched(model, tokenizer, PROMPTS, [red_runs[0], red_runs[0]], SETTINGS)
    edited = copy.deepcopy(model)
    attach_red(edited)
    with pytest.raises(ValueError, match="plain base model"):
        compare_batched(edited, tokenizer, PROMPTS, red_runs, SETTINGS)


def test_runs_kept_in_a_store_batch_like_their_folders(base, red_runs, tmp_path):
    model, tokenizer = base
    loaded = LoadedModel(model, tokenizer, "tiny-llama", "causal-lm", torch.device("cpu"), torch.float32)
    store = RunStore(tmp_path)
    for run, variant in zip(red_runs, ("full", "scale", "bias"), strict=True):
        store.import_edits("alice", run.folder, MethodSpec("red", variant=variant), loaded)
    records = store.list("alice")
    assert [record.label for record in records] == [f"{run.label} (imported)" for run in red_runs]
    from_store = compare_batched(model, tokenizer, PROMPTS, [SavedRun.of(record) for record in records], SETTINGS)
    direct = compare_batched(model, tokenizer, PROMPTS, red_runs, SETTINGS)
    assert from_store.batched == [BASE] + [record.label for record in records]
    assert from_store.token_ids == direct.token_ids


ENDING_PROMPTS = ["name[aromi]", "name[the eagle] eattype[coffee shop] food[french] area[riverside] near[burger king]"]


def likes_to_end(seed: int, tokenizer):
    """A tiny model that ends early: the end-of-sequence logit raised (pad == eos, as tokenizers without a pad have)."""
    model = tiny_model("llama", seed=seed)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] += 0.5 * model.model.embed_tokens.weight.mean(0).sign()
    return model


@pytest.mark.parametrize("ngram, penalty", [(1, 1.0), (2, 1.0), (3, 1.0), (0, 1.5)])
def test_rows_that_count_their_context_equal_their_prompt_alone_where_the_pad_is_the_eos(
    base, tmp_path, ngram, penalty
):
    _, tokenizer = base
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.pad_token = tokenizer.eos_token
    settings = DecodingSettings(max_new_tokens=12, no_repeat_ngram_size=ngram, repetition_penalty=penalty)
    ended = 0
    for seed in range(6):
        model = likes_to_end(seed, tokenizer)
        run = saved_red(model, tmp_path / f"red-{seed}", "full", seed=seed)
        batched = compare_batched(model, tokenizer, ENDING_PROMPTS, [run], settings, warmup=False)
        alone = []
        for prompt in ENDING_PROMPTS:
            alone.append(generate_one(Contender(BASE, model), tokenizer, prompt, settings))
            attached = load_edits(model, run.folder) and model
            alone.append(generate_one(Contender(run.label, attached), tokenizer, prompt, settings))
            detach_red(model)
        assert [(g.text, g.new_tokens) for g in batched.generations] == [(g.text, g.new_tokens) for g in alone]
        ended += sum(ids[-1] == tokenizer.eos_token_id for ids in batched.token_ids)
    assert ended > 0  # rows do end, where a padded row would have its end of sequence banned


def test_progress_counts_every_decoding_step_of_every_call(base, red_runs):
    model, tokenizer = base
    heard, runs, hear = [], red_runs[:2], lambda *call: heard.append(call)
    batched = compare_batched(model, tokenizer, PROMPTS, runs, SETTINGS, hear, fixed_length=True)
    assert batched.token_ids == compare_batched(model, tokenizer, PROMPTS, runs, SETTINGS, fixed_length=True).token_ids
    steps = [(done, 8, f"generating for base + 2 runs: token {done} of 8") for done in range(1, 9)]
    assert heard == [(0, 8, "generating up to 8 tokens for base + 2 runs"), *steps, (8, 8, "done")]
    heard.clear()
    compare_batched(model, tokenizer, PROMPTS[:1], runs, SETTINGS, hear, batch=False, fixed_length=True)
    starts = [call for call in heard if call[2].startswith("generating up to")]
    assert [(done, total) for done, total, _ in starts] == [(0, 24), (8, 24), (16, 24)]  # a call each
    assert [what for *_, what in starts] == [
        f"generating up to 8 tokens for {label}" for label in [BASE, *(run.label for run in runs)]
    ]
    assert heard[-1] == (24, 24, "done") and len(heard) == 3 + 3 * 8 + 1
