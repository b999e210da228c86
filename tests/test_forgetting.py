"""Forgetting: the mean per-token loss on the bundled general text, method off and on, equals a hand computation."""

import pytest
import torch
import torch.nn.functional as F
from tiny_models import tiny_model, tiny_tokenizer

from red_explorer.choice.forgetting import (
    GENERAL_TEXT,
    Forgetting,
    general_batches,
    general_loss,
    general_paragraphs,
    measure_forgetting,
)
from red_explorer.core.registry import METHODS, MethodSpec, apply_method, base_behaviour

MAX_LENGTH = 40


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer(general_paragraphs(), chat=False)


def hand_mean_token_loss(model, tokenizer, paragraphs) -> float:
    """Σ −log p(next token) over every paragraph on its own (no padding), over the number of predicted tokens."""
    total, count = 0.0, 0
    model.eval()  # no dropout: PEFT wraps a model in training mode
    with torch.no_grad():
        for paragraph in paragraphs:
            ids = tokenizer(paragraph, truncation=True, max_length=MAX_LENGTH)["input_ids"]
            logits = model(input_ids=torch.tensor([ids])).logits[0].float()  # (T, V)
            total += F.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum").item()
            count += len(ids) - 1
    return total / count


def perturb(model, seed: int = 0) -> None:
    """Move every trainable parameter away from its (identity) start, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))


def test_the_bundled_general_text_is_a_few_dozen_distinct_paragraphs():
    paragraphs = general_paragraphs()
    assert GENERAL_TEXT.name == "general_text.txt" and 40 <= len(paragraphs) <= 80
    assert len(set(paragraphs)) == len(paragraphs) and all(len(paragraph.split()) >= 20 for paragraph in paragraphs)


def test_general_batches_score_every_paragraph_token_and_no_padding(tokenizer):
    paragraphs = general_paragraphs()
    batches = general_batches(tokenizer, paragraphs, max_length=MAX_LENGTH, batch_size=8)
    assert sum(batch["input_ids"].shape[0] for batch in batches) == len(paragraphs)
    for batch in batches:
        real = batch["attention_mask"].bool()  # (B, T)
        assert torch.equal(batch["labels"][real], batch["input_ids"][real])
        assert bool((batch["labels"][~real] == -100).all())
    lengths = sorted(len(tokenizer(p, truncation=True, max_length=MAX_LENGTH)["input_ids"]) for p in paragraphs)
    assert sorted(int(n) for batch in batches for n in batch["attention_mask"].sum(1)) == lengths


@pytest.mark.parametrize("method", METHODS)
def test_forgetting_equals_the_hand_computed_token_loss_off_and_on(method, tokenizer):
    paragraphs = general_paragraphs()[:12]
    base = tiny_model("gpt2")  # GPT-2 has biases everywhere, so every method has something to train
    spec = MethodSpec(method)
    torch.manual_seed(0)
    model = apply_method(tiny_model("gpt2"), spec, "causal-lm")
    perturb(model)
    batches = general_batches(tokenizer, paragraphs, max_length=MAX_LENGTH, batch_size=4)
    measured = measure_forgetting(model, spec, batches, base=base)
    expected_before = hand_mean_token_loss(base, tokenizer, paragraphs)
    expected_after = hand_mean_token_loss(model, tokenizer, paragraphs)
    assert measured.general_loss_before == pytest.approx(expected_before, rel=1e-5)
    assert measured.general_loss_after == pytest.approx(expected_after, rel=1e-5)
    assert measured.forgetting == pytest.approx(expected_after - expected_before, abs=1e-5)
    assert abs(measured.forgetting) > 1e-4  # the perturbed method really changed the model


def test_switched_off_is_the_methods_base_behaviour(tokenizer):
    spec = MethodSpec("red")
    model = apply_method(tiny_model("gpt2"), spec, "causal-lm")
    perturb(model)
    batches = general_batches(tokenizer, general_paragraphs()[:6], max_length=MAX_LENGTH)
    measured = measure_forgetting(model, spec, batches)  # no base needed: RED switches off
    with base_behaviour(model, spec):
        assert measured.general_loss_before == general_loss(model, batches)
    assert measured.general_loss_before == pytest.approx(general_loss(tiny_model("gpt2"), batches), rel=1e-6)


def test_a_method_without_an_off_switch_needs_the_base(tokenizer):
    spec = MethodSpec("full")
    model = apply_method(tiny_model("gpt2"), spec, "causal-lm")
    batches = general_batches(tokenizer, general_paragraphs()[:4], max_length=MAX_LENGTH)
    with pytest.raises(ValueError, match="pass base="):
        measure_forgetting(model, spec, batches)


def test_forgetting_record():
    record = Forgetting(general_loss_before=2.5, general_loss_after=2.75).to_dict()
    assert record == {"general_loss_before": 2.5, "general_loss_after": 2.75, "forgetting": 0.25}


def test_an_empty_text_file_is_refused(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    with pytest.raises(ValueError, match="paragraphs separated by blank lines"):
        general_paragraphs(tmp_path / "empty.txt")
