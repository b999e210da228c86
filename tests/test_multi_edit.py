"""Per-row edits in one batch equal each edit alone; in-place swaps equal fresh loads."""

from __future__ import annotations

import pytest
import torch
from tiny_models import logits, sample_inputs, tiny_model

from red_explorer.core.checkpoint import EditsFileError
from red_explorer.core.red.bank import EditBank, per_row_edits, swap_edits
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import BIAS, SCALE, attach_red, red_vectors
from red_explorer.core.red.merge import merge_red
from red_explorer.core.registry import load_edits, save_edits

ARCHITECTURES = ["llama", "gpt2", "qwen2"]


def random_edit(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Non-identity vectors for every attached RED vector of ``model``."""
    generator = torch.Generator().manual_seed(seed)
    edit = {}
    for name, vector in red_vectors(model).items():
        noise = torch.randn(vector.shape, generator=generator) * 0.3
        edit[name] = noise + 1 if name.endswith(SCALE) else noise
    return edit


def edited_model(architecture: str, config: RedConfig | None = None) -> torch.nn.Module:
    model = tiny_model(architecture)
    attach_red(model, config or RedConfig(sites=["ffn", "attn"]))
    return model


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_row_of_mixed_batch_equals_that_edit_alone(architecture):
    model = edited_model(architecture)
    edits = [random_edit(model, seed) for seed in range(3)]
    bank = EditBank.from_vectors(edits)
    row_ids = [2, 0, 1, 2]
    input_ids = sample_inputs(batch=4, length=9)
    with per_row_edits(model, bank, row_ids):
        mixed = logits(model, input_ids)
    for row, edit_index in enumerate(row_ids):
        swap_edits(model, edits[edit_index])
        alone = logits(model, input_ids[row : row + 1])
        torch.testing.assert_close(mixed[row : row + 1], alone, rtol=1e-5, atol=1e-5)


def test_per_row_generation_equals_each_edit_alone():
    model = edited_model("llama")
    edits = [random_edit(model, seed) for seed in range(2)]
    bank = EditBank.from_vectors(edits)
    input_ids = sample_inputs(batch=2, length=6)
    settings = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    with per_row_edits(model, bank, [1, 0]):
        mixed = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), **settings)
    for row, edit_index in enumerate([1, 0]):
        swap_edits(model, edits[edit_index])
        one = input_ids[row : row + 1]
        alone = model.generate(one, attention_mask=torch.ones_like(one), **settings)
        assert torch.equal(mixed[row : row + 1], alone)


def test_context_restores_the_attached_edit():
    model = edited_model("llama")
    input_ids = sample_inputs()
    before = logits(model, input_ids)
    bank = EditBank.from_vectors([random_edit(model, 5)])
    with per_row_edits(model, bank, [0, 0]):
        assert not torch.allclose(logits(model, input_ids), before)
    torch.testing.assert_close(logits(model, input_ids), before)


def test_bank_from_directories_equals_bank_from_vectors(tmp_path):
    model = edited_model("llama", RedConfig())
    edits = [random_edit(model, seed) for seed in range(2)]
    directories = []
    for index, edit in enumerate(edits):
        swap_edits(model, edit)
        directories.append(save_edits(model, tmp_path / f"edit{index}", base_model="tiny"))
    from_files = EditBank.from_directories(tiny_model("llama"), directories)
    from_memory = EditBank.from_vectors(edits)
    assert from_files.site_names == from_memory.site_names
    assert from_files.labels == [str(directory) for directory in directories]
    for site in from_memory.site_names:
        torch.testing.assert_close(from_files.scales[site], from_memory.scales[site])
        torch.testing.assert_close(from_files.biases[site], from_memory.biases[site])


def test_variants_stack_with_their_identity_vectors():
    full = edited_model("llama", RedConfig())
    bias_only = {name: vector for name, vector in random_edit(full, 1).items() if name.endswith(BIAS)}
    bank = EditBank.from_vectors([random_edit(full, 0), bias_only])
    site = bank.site_names[0]
    assert bank.scales[site].shape == (2, 32)
    assert torch.equal(bank.scales[site][1], torch.ones(32))
    assert torch.equal(bank.biases[site][1], bias_only[f"{site}.{BIAS}"])


def test_per_row_edits_refuse_wrong_rows_sites_and_merged_models():
    model = edited_model("llama")
    bank = EditBank.from_vectors([random_edit(model, 0), random_edit(model, 1)])
    with pytest.raises(ValueError, match="row_ids must lie"):
        with per_row_edits(model, bank, [0, 2]):
            pass
    with pytest.raises(ValueError, match="batch has 3"):
        with per_row_edits(model, bank, [0, 1]):
            logits(model, sample_inputs(batch=3))
    ffn_only = edited_model("llama", RedConfig())
    with pytest.raises(ValueError, match="bank.red_config"):
        with per_row_edits(ffn_only, bank, [0, 1]):
            pass
    merge_red(model)
    with pytest.raises(ValueError, match="merged"):
        with per_row_edits(model, bank, [0, 1]):
            pass


def test_bank_attaches_through_its_red_config():
    source = edited_model("llama")
    bank = EditBank.from_vectors([random_edit(source, 0)])
    model = tiny_model("llama")
    attach_red(model, bank.red_config())
    input_ids = sample_inputs(batch=1)
    with per_row_edits(model, bank, [0]):
        via_bank = logits(model, input_ids)
    swap_edits(source, bank.vectors(0))
    torch.testing.assert_close(via_bank, logits(source, input_ids))


def save_random(model: torch.nn.Module, directory, seed: int):
    swap_edits(model, random_edit(model, seed))
    return save_edits(model, directory, base_model="tiny")


@pytest.mark.parametrize("merged", [False, True])
def test_swap_from_directory_equals_fresh_load(tmp_path, merged):
    writer = edited_model("llama")
    first, second = save_random(writer, tmp_path / "a", 0), save_random(writer, tmp_path / "b", 1)
    swapped, fresh = tiny_model("llama"), tiny_model("llama")
    load_edits(swapped, first)
    load_edits(fresh, second)
    if merged:
        merge_red(swapped)
        merge_red(fresh)
    swap_edits(swapped, second)
    input_ids = sample_inputs()
    torch.testing.assert_close(logits(swapped, input_ids), logits(fresh, input_ids), rtol=1e-5, atol=1e-5)
    for name, vector in red_vectors(fresh).items():
        assert torch.equal(red_vectors(swapped)[name], vector)


def test_swap_refuses_other_sites_and_changes_nothing(tmp_path):
    ffn_attn = edited_model("llama")
    ffn_only = edited_model("llama", RedConfig())
    other = save_random(ffn_only, tmp_path / "ffn", 3)
    before = {name: vector.clone() for name, vector in red_vectors(ffn_attn).items()}
    with pytest.raises(EditsFileError, match="do not match"):
        swap_edits(ffn_attn, other)
    broken = random_edit(ffn_attn, 4)
    broken[next(iter(broken))][0] = float("nan")
    with pytest.raises(EditsFileError, match="NaN"):
        swap_edits(ffn_attn, broken)
    for name, vector in red_vectors(ffn_attn).items():
        assert torch.equal(vector, before[name])


def bfloat16_model() -> torch.nn.Module:
    """A bf16 model with the default float32 RED vectors: every forward needs a cast."""
    model = tiny_model("llama").to(torch.bfloat16)
    attach_red(model, RedConfig())
    return model


def test_inference_reuses_casts_until_the_vectors_change():
    model = bfloat16_model()
    input_ids = sample_inputs()
    for seed in (0, 1):
        swap_edits(model, random_edit(model, seed))
        with torch.enable_grad():
            expected = model(input_ids=input_ids).logits.detach()  # uncached casts
        assert torch.equal(logits(model, input_ids), expected)  # cached casts, refreshed after the swap
        assert torch.equal(logits(model, input_ids), expected)


def test_per_row_edits_on_a_bfloat16_model_match_each_edit_alone():
    model = bfloat16_model()
    edits = [random_edit(model, seed) for seed in range(2)]
    bank = EditBank.from_vectors(edits)  # float32 bank, cast once per block
    input_ids = sample_inputs(batch=2)
    with per_row_edits(model, bank, [1, 0]):
        mixed = logits(model, input_ids)
    for row, edit_index in enumerate([1, 0]):
        swap_edits(model, edits[edit_index])
        torch.testing.assert_close(mixed[row : row + 1], logits(model, input_ids[row : row + 1]))
