"""A classification run on the shared base: released, the base has its own head back; at strength 0 it is the base."""

import copy

import pytest
import torch
import transformers as tf
from tiny_models import tiny_tokenizer

from red_explorer.core.registry import METHODS, MethodSpec, apply_method, save_method
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.experiment import trained_run
from red_explorer.engine.training import TrainConfig
from red_explorer.explore.strength import STRENGTH_HANDLERS, at_strength, dose_response
from red_explorer.models.loading import load_model
from red_explorer.runs.attach import attach_saved, release

pytestmark = pytest.mark.usefixtures("one_thread")

SENTIMENT = "red_explorer/samples/sentiment.csv"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny BERT encoder loaded for 2-label classification: its new head is random, as a user's would be."""
    folder = tmp_path_factory.mktemp("bert") / "model"
    config = tf.BertConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=64,
        pad_token_id=3,
    )
    torch.manual_seed(0)
    tf.BertModel(config).save_pretrained(folder)
    tiny_tokenizer([line.strip() for line in open(SENTIMENT)], chat=False).save_pretrained(folder)
    return load_model(str(folder), task="classification", num_labels=2, device="cpu")


@pytest.fixture(scope="module")
def saved_runs(classifier, tmp_path_factory):
    """One saved run per registered method, its edit and its head moved away from the base's."""
    root, runs = tmp_path_factory.mktemp("runs"), {}
    for name in METHODS:
        spec = MethodSpec(name)
        trained = apply_method(copy.deepcopy(classifier.model), spec, "classification", classifier.head_parameter_names)
        torch.manual_seed(1)
        with torch.no_grad():
            for parameter in trained.parameters():
                if parameter.requires_grad:
                    parameter.add_(torch.randn_like(parameter) * 0.2)
        runs[name] = save_method(trained, spec, root / name, "tiny-bert", classifier.head_parameter_names)
    return runs


INPUTS = torch.randint(4, 100, (3, 9), generator=torch.Generator().manual_seed(2))


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=INPUTS).logits


def snapshot(model: torch.nn.Module) -> dict:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize("name", METHODS)
def test_attaching_and_releasing_a_run_gives_the_base_its_own_head_back(name, classifier, saved_runs):
    base, before, weights = classifier.model, logits(classifier.model), snapshot(classifier.model)
    trained, spec = attach_saved(base, saved_runs[name])
    assert not torch.allclose(logits(trained), before)  # the run (its head too) is on
    release(trained, spec)
    assert torch.equal(logits(base), before)
    after = snapshot(base)
    assert after.keys() == weights.keys()  # no wrapper (LN tuning's head) left in the base
    assert all(torch.equal(after[key], weights[key]) for key in weights)
    assert {n for n, p in base.named_parameters() if p.requires_grad} == set(classifier.head_parameter_names)


def test_a_run_that_fails_to_load_leaves_the_head_as_it_was(classifier, saved_runs, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in saved_runs["red"].iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    record = (broken / "red_config.json").read_text().replace('"model_type": "bert"', '"model_type": "gpt2"')
    (broken / "red_config.json").write_text(record)
    before = logits(classifier.model)
    with pytest.raises(ValueError, match="gpt2"):
        attach_saved(classifier.model, broken)
    assert torch.equal(logits(classifier.model), before)


@pytest.mark.parametrize("name", ["lntuning", "ia3", "bitfit", "loreft"])
def test_training_a_classifier_gives_the_base_its_own_head_back(name, classifier):
    data = prepare_data(SENTIMENT, classifier.tokenizer, DataConfig(task="classification", max_rows=16))
    before, weights = logits(classifier.model), snapshot(classifier.model)
    with trained_run(classifier, data, MethodSpec(name), TrainConfig(max_steps=2, batch_size=4, learning_rate=3e-2)):
        pass
    assert torch.equal(logits(classifier.model), before)
    assert snapshot(classifier.model).keys() == weights.keys()


@pytest.mark.parametrize("name", list(STRENGTH_HANDLERS))
def test_a_classification_run_at_strength_0_is_the_base_and_at_1_the_run(name, classifier, saved_runs):
    base = logits(classifier.model)
    trained, spec = attach_saved(classifier.model, saved_runs[name])
    try:
        run = logits(trained)
        with at_strength(trained, 0.0):
            assert torch.equal(logits(trained), base)
        with at_strength(trained, 1.0):
            assert torch.equal(logits(trained), run)
        with at_strength(trained, 0.5):
            halfway = logits(trained)
        assert not torch.allclose(halfway, base) and not torch.allclose(halfway, run)
        assert torch.equal(logits(trained), run)  # the head is the run's again after the block
    finally:
        release(trained, spec)
    assert torch.equal(logits(classifier.model), base)


@pytest.mark.parametrize("name", list(STRENGTH_HANDLERS))
def test_dose_response_measures_kl_from_the_base_with_its_own_head(name, classifier, saved_runs):
    data = prepare_data(SENTIMENT, classifier.tokenizer, DataConfig(task="classification", max_rows=16))
    batches = data.validation_batches(4)
    trained, spec = attach_saved(classifier.model, saved_runs[name])
    try:
        zero, one = dose_response(trained, batches, (0.0, 1.0))
    finally:
        release(trained, spec)
    assert zero.kl_from_base == 0.0
    assert one.kl_from_base > 1e-4
