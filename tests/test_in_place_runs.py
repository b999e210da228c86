"""Runs on the base itself: a method trains the base model with no copy and leaves it exactly as it was."""

import copy
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from tiny_models import save_tiny_causal_lm

from red_explorer.choice.cost import CostConfig
from red_explorer.choice.sweep import SweepConfig, run_sweep
from red_explorer.core.registry import METHODS, MethodSpec
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine import experiment
from red_explorer.engine.experiment import trained_run
from red_explorer.engine.training import StepEvent, TrainConfig
from red_explorer.models.loading import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

DETACHABLE = [name for name in METHODS if name not in ("full", "bitfit")]  # bitfit: Llama has no biases
CONFIG = TrainConfig(max_steps=2, batch_size=4, learning_rate=3e-2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def causal(folder):
    loaded = load_model(str(folder), device="cpu")
    data = prepare_data(
        "red_explorer/samples/restaurants_e2e.csv", loaded.tokenizer, DataConfig(max_length=96, max_rows=16)
    )
    return loaded, data


@pytest.fixture(scope="module")
def classifier(folder):
    loaded = load_model(str(folder), task="classification", num_labels=2, device="cpu")
    data = prepare_data(
        "red_explorer/samples/sentiment.csv", loaded.tokenizer, DataConfig(task="classification", max_rows=16)
    )
    return loaded, data


@pytest.fixture
def copies(monkeypatch):
    """Every deep copy of a model that the training path makes."""
    made = []

    def counting(model, *args):
        made.append(type(model).__name__)
        return copy.deepcopy(model, *args)

    monkeypatch.setattr(experiment, "copy", SimpleNamespace(deepcopy=counting))
    return made


def snapshot(model: torch.nn.Module) -> dict:
    return {
        name: (tensor.detach().clone(), getattr(tensor, "requires_grad", False))
        for name, tensor in model.state_dict(keep_vars=True).items()
    }


def assert_same(model: torch.nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after.keys() == before.keys()  # nothing attached is left behind
    for name, (tensor, trainable) in before.items():
        assert torch.equal(after[name][0], tensor), name
        assert after[name][1] == trainable, name


def output(loaded, data) -> torch.Tensor:
    batch = data.validation_batches(4)[0]
    with torch.no_grad():
        return loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@pytest.mark.parametrize("name", DETACHABLE)
def test_a_method_trains_the_base_itself_and_leaves_it_exactly_as_it_was(name, causal, copies):
    loaded, data = causal
    before, base_output, mode = snapshot(loaded.model), output(loaded, data), loaded.model.training
    with trained_run(loaded, data, MethodSpec(name), CONFIG) as run:
        assert run.metrics_after["loss"] < run.metrics_before["loss"]
        assert not torch.equal(output(loaded, data), base_output)  # the method sits on the base model itself
    assert copies == []
    assert_same(loaded.model, before)
    assert torch.equal(output(loaded, data), base_output)
    assert loaded.model.training == mode


def test_full_fine_tuning_trains_a_copy_and_the_base_keeps_its_weights(causal, copies):
    loaded, data = causal
    before = snapshot(loaded.model)
    with trained_run(loaded, data, MethodSpec("full"), replace(CONFIG, learning_rate=1e-3)) as run:
        assert run.model is not loaded.model and run.metrics_after["loss"] < run.metrics_before["loss"]
    assert len(copies) == 1
    assert_same(loaded.model, before)


@pytest.mark.parametrize("name", ["red", "lora"])
def test_a_classification_head_trained_with_the_method_is_put_back(name, classifier):
    loaded, data = classifier
    head = loaded.head_parameter_names
    assert head
    before = snapshot(loaded.model)
    with trained_run(loaded, data, MethodSpec(name), CONFIG):
        pass
    assert_same(loaded.model, before)


def test_two_same_seed_runs_in_a_row_on_one_base_give_the_same_numbers(classifier):
    loaded, data = classifier
    results = []
    for _ in range(2):
        with trained_run(loaded, data, MethodSpec("red"), CONFIG) as run:
            results.append((run.train_loss, run.metrics_after))
    assert results[0] == results[1]  # the second run did not start from the first one's head


def test_a_run_that_fails_mid_training_takes_its_method_off(causal):
    loaded, data = causal
    before = snapshot(loaded.model)

    def fail(event):
        if isinstance(event, StepEvent):
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"), trained_run(loaded, data, MethodSpec("red"), CONFIG, fail):
        pass
    assert_same(loaded.model, before)


def test_a_sweep_copies_no_model_and_leaves_the_base_as_it_was(causal, copies):
    loaded, data = causal
    before = snapshot(loaded.model)
    config = SweepConfig(
        learning_rates=[1e-3, 3e-2],
        train=TrainConfig(max_steps=2, batch_size=4),
        general_max_length=32,
        cost=CostConfig(new_tokens=2, prompt_tokens=4, repeats=1),
    )
    result = run_sweep(loaded, data, [MethodSpec("red"), MethodSpec("lora")], config)
    assert copies == []
    assert_same(loaded.model, before)
    for best in result.best:
        assert best["saved_bytes"] > 0 and best["generation_overhead_attached"] > 0
        assert best["generation_overhead_merged"] > 0  # both merge: the merged copy is timed too
