"""The training engine: every method lowers the loss; stop, non-finite loss, evaluation and saving."""

import copy
import math
import threading
from dataclasses import replace

import pytest
import torch
from tiny_models import logits, sample_inputs, save_tiny_causal_lm

from red_explorer.core.red.edit import red_vectors
from red_explorer.core.registry import MethodSpec, apply_method, base_behaviour, load_method
from red_explorer.core.state import attached_state
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.experiment import default_train_config, save_run, train_method, trained_run
from red_explorer.engine.training import EvalEvent, StepEvent, TrainConfig, run_training
from red_explorer.models.loading import load_model

SAMPLE = "red_explorer/samples/restaurants_e2e.csv"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def loaded(tiny_folder):
    return load_model(str(tiny_folder), device="cpu")


@pytest.fixture(scope="module")
def data(loaded):
    return prepare_data(SAMPLE, loaded.tokenizer, DataConfig(max_length=256, max_rows=80))


def train_on_copy(loaded, data, spec, config, **options):
    """``train_method`` on a copy of the module's shared base: each test keeps its trained model."""
    return train_method(replace(loaded, model=copy.deepcopy(loaded.model)), data, spec, config, **options)


def quick(spec, **options):
    return default_train_config(spec, **({"epochs": 3, "batch_size": 8} | options))


@pytest.mark.parametrize(
    "spec, learning_rate",
    [
        (MethodSpec("red"), None),
        (MethodSpec("red", variant="bias", sites=["ffn", "attn"]), None),
        (MethodSpec("lora"), 1e-2),
        (MethodSpec("tare"), None),
        (MethodSpec("full"), 1e-3),
    ],
    ids=["red", "red-bias-both", "lora", "tare", "full"],
)
def test_training_lowers_the_validation_loss(loaded, data, spec, learning_rate):
    config = quick(spec, **({"learning_rate": learning_rate} if learning_rate else {}))
    result = train_on_copy(loaded, data, spec, config)
    assert result.stopped_reason == "completed"
    assert result.metrics_after["loss"] < result.metrics_before["loss"] - 0.05
    assert result.train_loss[-1] < result.train_loss[0]
    assert result.metrics_after["perplexity"] == pytest.approx(math.exp(result.metrics_after["loss"]))


def test_training_edits_the_base_itself_and_a_trained_run_gives_it_back(loaded, data):
    before = logits(loaded.model, sample_inputs())
    with trained_run(loaded, data, MethodSpec("red"), quick(MethodSpec("red"), max_steps=2)) as result:
        assert result.model is loaded.model and attached_state(loaded.model) is not None
        assert not torch.equal(logits(loaded.model, sample_inputs()), before)
    assert torch.equal(logits(loaded.model, sample_inputs()), before)
    assert attached_state(loaded.model) is None


def test_before_metrics_equal_the_base_model(loaded, data):
    """Every method starts as the identity edit, so 'before' is the base model's validation loss."""
    results = [train_on_copy(loaded, data, MethodSpec(m), quick(MethodSpec(m), max_steps=1)) for m in ("red", "lora")]
    assert results[0].metrics_before["loss"] == pytest.approx(results[1].metrics_before["loss"], rel=1e-6)


def test_parameter_counts(loaded, data):
    hidden, layers = loaded.model.config.hidden_size, loaded.model.config.num_hidden_layers
    red = train_on_copy(loaded, data, MethodSpec("red"), quick(MethodSpec("red"), max_steps=1))
    assert red.trainable_parameters == 2 * hidden * layers
    both = train_on_copy(loaded, data, MethodSpec("red", sites=["ffn", "attn"]), quick(MethodSpec("red"), max_steps=1))
    assert both.trainable_parameters == 4 * hidden * layers


def test_callbacks_report_steps_and_evaluations(loaded, data):
    events = []
    spec = MethodSpec("red")
    result = train_on_copy(loaded, data, spec, quick(spec, max_steps=4, eval_every=2), callback=events.append)
    steps = [event for event in events if isinstance(event, StepEvent)]
    evals = [event for event in events if isinstance(event, EvalEvent)]
    assert [event.step for event in steps] == [1, 2, 3, 4] and steps[0].total_steps == 4
    assert [event.loss for event in steps] == pytest.approx(result.train_loss)
    assert all(event.tokens_per_second > 0 and event.learning_rate >= 0 for event in steps)
    assert [event.step for event in evals] == [2] and [row["step"] for row in result.eval_history] == [2]


def test_stop_between_steps_keeps_the_trained_edits(loaded, data):
    stop = threading.Event()

    def stop_after_two(event):
        if isinstance(event, StepEvent) and event.step == 2:
            stop.set()

    spec = MethodSpec("red")
    result = train_on_copy(loaded, data, spec, quick(spec), callback=stop_after_two, stop=stop)
    assert result.stopped_reason == "stopped by user" and len(result.train_loss) == 2
    assert result.metrics_after["loss"] != result.metrics_before["loss"]


def test_keep_best_restores_the_lowest_validation_loss(loaded, data):
    spec = MethodSpec("red")
    result = train_on_copy(loaded, data, spec, quick(spec, max_steps=6, eval_every=1, keep="best", learning_rate=0.3))
    best = min(row["loss"] for row in result.eval_history)
    assert result.metrics_after["loss"] == pytest.approx(best, rel=1e-5)


def test_non_finite_loss_stops_and_rolls_back(loaded, data):
    """Step 2 leaves the bias infinite (as a diverging optimizer would): step 3's loss is not finite,
    training stops, and the vectors go back to the last ones that gave a finite loss (start of step 2)."""
    model = apply_method(copy.deepcopy(loaded.model), MethodSpec("red"), "causal-lm")
    vectors = red_vectors(model)
    seen = {}

    def corrupt(event):
        seen[event.step] = {name: vector.detach().clone() for name, vector in vectors.items()}
        if event.step == 2:
            with torch.no_grad():
                next(iter(vectors.values())).fill_(float("inf"))

    config = TrainConfig(learning_rate=1e-2, epochs=3)
    result = run_training(model, lambda epoch: data.train_batches(8, epoch), None, "causal-lm", config, corrupt)
    assert result.stopped_reason == "non-finite loss at step 3: lower the learning rate"
    assert result.steps == 2 and all(math.isfinite(loss) for loss in result.train_loss)
    assert all(torch.equal(vectors[name], value) for name, value in seen[1].items())


def test_train_config_validation():
    with pytest.raises(ValueError, match="scheduler"):
        TrainConfig(scheduler="exponential")
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=0)


@pytest.mark.parametrize("method", ["red", "tare", "lora"])
def test_saved_run_loads_back_with_the_same_outputs(loaded, data, tmp_path, method):
    spec = MethodSpec(method)
    result = train_on_copy(loaded, data, spec, quick(spec, max_steps=2, learning_rate=1e-2))
    save_run(result, loaded, tmp_path)
    assert (tmp_path / "metrics.json").is_file()
    fresh = load_model(loaded.name, device="cpu")
    model, loaded_spec = load_method(fresh.model, tmp_path)
    assert loaded_spec.method == method
    assert torch.allclose(logits(model, sample_inputs()), logits(result.model, sample_inputs()), atol=1e-6)
    with base_behaviour(model, loaded_spec):
        assert torch.allclose(logits(model, sample_inputs()), logits(loaded.model, sample_inputs()), atol=1e-6)


def test_classification_trains_head_and_edits(tmp_path):
    import transformers as tf
    from tiny_models import tiny_tokenizer

    corpus = [line.strip() for line in open("red_explorer/samples/sentiment.csv")]
    tokenizer = tiny_tokenizer(corpus, chat=False)
    config = tf.BertConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=256,
        pad_token_id=3,
    )
    tf.BertForSequenceClassification(config).save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    encoder = load_model(str(tmp_path / "bert"), task="classification", num_labels=2, device="cpu")
    data_config = DataConfig(task="classification", max_length=128)
    data = prepare_data("red_explorer/samples/sentiment.csv", encoder.tokenizer, data_config)
    spec = MethodSpec("red")
    result = train_on_copy(encoder, data, spec, quick(spec, epochs=4, learning_rate=3e-2))
    assert {"accuracy", "f1", "mcc"} <= set(result.metrics_after)
    assert result.metrics_after["loss"] < result.metrics_before["loss"]
    head = sum(dict(result.model.named_parameters())[name].numel() for name in encoder.head_parameter_names)
    assert result.trainable_parameters == 2 * 32 * 2 + head
