"""Learning-rate sweeps and the cost of a run: every point, the best by the metric, honest cost fields, the CLI."""

import json
import threading

import pytest
import torch
from test_cli import cli
from tiny_models import save_tiny_causal_lm, tiny_model, tiny_tokenizer

from red_explorer.choice.card import card_markdown
from red_explorer.choice.cost import (
    CostConfig,
    StepTimer,
    folder_bytes,
    generation_overhead,
    prompt_ids,
    saved_bytes,
    steady_step_seconds,
    time_generations,
)
from red_explorer.choice.forgetting import general_paragraphs
from red_explorer.choice.sweep import SweepConfig, read_results, run_sweep, write_results
from red_explorer.core.registry import METHODS, REGISTRY, MethodSpec, apply_method, get_method, save_method
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.training import StepEvent, TrainConfig
from red_explorer.models.loading import load_model

SAMPLE = "red_explorer/samples/restaurants_e2e.csv"
RATES = [1e-3, 5e-2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def loaded_data(model_dir):
    loaded = load_model(str(model_dir), device="cpu")
    data = prepare_data(SAMPLE, loaded.tokenizer, DataConfig(max_length=256, max_rows=24))
    return loaded, data


@pytest.fixture(scope="module")
def sweep(loaded_data, tmp_path_factory):
    loaded, data = loaded_data
    general = tmp_path_factory.mktemp("general") / "general.txt"
    general.write_text("\n\n".join(general_paragraphs()[:12]))  # a short general set keeps the test fast
    config = SweepConfig(
        learning_rates=RATES,
        train=TrainConfig(max_steps=2, batch_size=4),
        general_text=str(general),
        general_max_length=48,
        cost=CostConfig(new_tokens=3, prompt_tokens=6, repeats=1),
    )
    progress = []
    result = run_sweep(loaded, data, [MethodSpec("red"), MethodSpec("lora")], config, lambda *a: progress.append(a))
    return result, progress


@pytest.mark.parametrize("name", METHODS)
def test_auto_grid_is_log_spaced_around_each_methods_default(name):
    method = get_method(name)
    rates = SweepConfig().rates_for(method)
    assert len(rates) == 5 and rates[2] == pytest.approx(method.default_learning_rate, rel=1e-3)
    assert rates == pytest.approx(
        [method.default_learning_rate * f for f in (0.1, 1 / 3, 1, 3, 10)], rel=5e-3
    )  # 3 digits


def test_given_rates_are_the_same_for_every_method():
    config = SweepConfig(learning_rates=[1e-3, 1e-2], factors=[1.0])
    assert all(config.rates_for(method) == [1e-3, 1e-2] for method in REGISTRY.values())


@pytest.mark.parametrize(
    "options, message",
    [
        ({"learning_rates": "fast"}, "'auto' or a list"),
        ({"learning_rates": [1e-3, -1]}, "positive"),
        ({"factors": []}, "non-empty"),
    ],
)
def test_sweep_config_rejects_nonsense(options, message):
    with pytest.raises(ValueError, match=message):
        SweepConfig(**options)


def test_sweep_returns_every_point_and_picks_the_argmin_of_the_losses(sweep):
    result, _ = sweep
    assert result.metric == "val_loss" and not result.higher_is_better
    assert [(point["method"], point["learning_rate"]) for point in result.points] == [
        ("red", rate) for rate in RATES
    ] + [("lora", rate) for rate in RATES]
    assert all(point["steps"] == 2 and point["stopped_reason"] == "completed" for point in result.points)
    assert result.points[0]["before"] == pytest.approx(result.points[1]["before"])  # same data, same start
    for best in result.best:
        losses = {
            point["learning_rate"]: point["after"] for point in result.points if point["method"] == best["method"]
        }
        assert best["learning_rate"] == min(losses, key=losses.get)
        assert best["after"] == min(losses.values())
    assert [best["method"] for best in result.best] == ["red", "lora"]


def test_every_point_reports_forgetting(sweep):
    result, _ = sweep
    for point in result.points:
        assert point["forgetting"] == pytest.approx(point["general_loss_after"] - point["general_loss_before"])
    before = {round(point["general_loss_before"], 6) for point in result.points}
    assert len(before) == 1  # switched off, every method is the same base model


def test_progress_reports_each_point_and_its_steps(sweep):
    _, progress = sweep
    starts = [(index, total) for index, total, event in progress if event is None]
    assert starts == [(index, 4) for index in range(4)]
    steps = [(index, event.step) for index, _, event in progress if isinstance(event, StepEvent)]
    assert steps == [(index, step) for index in range(4) for step in (1, 2)]


def test_cost_fields_are_positive(sweep):
    result, _ = sweep
    hidden, layers = 32, 2
    for point in result.points:
        assert point["trainable_parameters"] > 0 and point["seconds_per_step"] > 0 and point["train_seconds"] > 0
        assert point["peak_memory_bytes"] >= 0  # CPU: resident growth over the run, which may be none
    red, lora = result.best
    assert red["trainable_parameters"] == red["method_parameters"] == 2 * hidden * layers
    for best in result.best:
        assert best["saved_bytes"] > 0 and best["generation_seconds_base"] > 0
        assert best["generation_overhead_attached"] > 0 and best["generation_overhead_merged"] > 0
        assert best["merge_note"] == ""


def test_results_json_holds_every_point_and_the_best_rates(sweep, tmp_path):
    result, _ = sweep
    write_results(result, tmp_path)
    saved = read_results(tmp_path)
    assert saved == json.loads(json.dumps(result.to_dict()))
    assert len(saved["points"]) == 4 and saved["config"]["learning_rates"] == RATES
    assert {best["method"]: best["learning_rate"] for best in saved["best"]} == {
        best["method"]: best["learning_rate"] for best in result.best
    }


def test_a_stop_event_ends_the_sweep(loaded_data):
    loaded, data = loaded_data
    stop = threading.Event()
    config = SweepConfig(learning_rates=RATES, train=TrainConfig(max_steps=2, batch_size=4), forgetting=False)
    stop_after_first = lambda index, total, event: stop.set() if index == 1 else None  # noqa: E731
    result = run_sweep(loaded, data, [MethodSpec("red"), MethodSpec("lora")], config, stop_after_first, stop)
    assert result.stopped and len(result.points) == 2
    assert result.points[1]["stopped_reason"] == "stopped by user"
    assert [best["learning_rate"] for best in result.best] == [RATES[0]]  # the stopped point cannot win
    assert "saved_bytes" not in result.best[0]


def test_a_method_that_refuses_the_model_is_reported_and_the_sweep_goes_on(loaded_data):
    loaded, data = loaded_data  # a Llama: no biases, so BitFit has nothing to train
    config = SweepConfig(learning_rates=RATES[:1], train=TrainConfig(max_steps=1, batch_size=4), forgetting=False)
    config.cost.new_tokens = 0
    result = run_sweep(loaded, data, [MethodSpec("bitfit"), MethodSpec("red")], config)
    assert list(result.refused) == ["BitFit"] and "bias" in result.refused["BitFit"]
    assert [point["method"] for point in result.points] == ["red"] and len(result.best) == 1
    assert result.to_dict()["refused"] == result.refused
    assert f"- BitFit: {result.refused['BitFit']}" in card_markdown(result.to_dict())


def test_steady_step_seconds_leaves_out_the_first_steps():
    assert steady_step_seconds([5.0, 1.0, 3.0, 2.0], skip_steps=1) == 2.0
    assert steady_step_seconds([5.0, 1.0], skip_steps=2) == 3.0  # nothing left: every step counts
    with pytest.raises(ValueError, match="no optimizer step"):
        steady_step_seconds([])


def test_step_timer_keeps_the_seconds_and_passes_events_on():
    seen = []
    timer = StepTimer(seen.append)
    events = [StepEvent(step, 2, 1.0, 1e-3, 10.0, seconds) for step, seconds in ((1, 0.5), (2, 0.25))]
    for event in events:
        timer(event)
    assert timer.seconds == [0.5, 0.25] and seen == events


def test_saved_size_equals_the_folders_bytes(tmp_path):
    model = tiny_model("gpt2")
    spec = MethodSpec("red")
    apply_method(model, spec, "causal-lm")
    save_method(model, spec, tmp_path / "edits", "tiny-gpt2")
    on_disk = sum(path.stat().st_size for path in (tmp_path / "edits").iterdir())
    assert saved_bytes(model, spec, "tiny-gpt2") == on_disk == folder_bytes(tmp_path / "edits") > 0


def test_generation_timing_covers_base_attached_and_merged():
    base, trained = tiny_model("gpt2"), tiny_model("gpt2")
    spec = MethodSpec("red")
    apply_method(trained, spec, "causal-lm")
    config = CostConfig(new_tokens=3, prompt_tokens=5, repeats=2)
    tokenizer = tiny_tokenizer(general_paragraphs())
    ids = prompt_ids(tokenizer, general_paragraphs()[0], config.prompt_tokens)
    assert ids.shape == (1, 5)
    overhead = generation_overhead(trained, spec, base, ids, config, pad_token_id=0)
    assert overhead.base_seconds > 0 and overhead.attached_seconds > 0 and overhead.merged_seconds > 0
    record = overhead.to_dict()
    assert record["generation_overhead_attached"] == pytest.approx(overhead.attached_seconds / overhead.base_seconds)
    assert set(time_generations({"a": base}, torch.tensor([[3, 4]]), config, 0)) == {"a"}


def test_cli_sweep_writes_results_json_and_the_method_card(model_dir, tmp_path):
    out, general = tmp_path / "sweep", tmp_path / "general.txt"
    general.write_text("\n\n".join(general_paragraphs()[:8]))
    result = cli(
        "sweep", "--model", model_dir, "--device", "cpu", "--data", SAMPLE, "--max-rows", 24, "--batch-size", 4,
        "--methods", "red,lora", "--lrs", "1e-3,1e-2", "--max-steps", 2, "--generation-tokens", 2, "--out", out,
        "--general-text", general,
    )  # fmt: skip
    saved = json.loads((out / "results.json").read_text())
    assert [(point["method"], point["learning_rate"]) for point in saved["points"]] == [
        ("red", 1e-3), ("red", 1e-2), ("lora", 1e-3), ("lora", 1e-2),
    ]  # fmt: skip
    assert all(point["forgetting"] is not None for point in saved["points"])
    card = (out / "results.md").read_text()
    for best in saved["best"]:
        assert f"| {best['label']} | {best['learning_rate']:g} |" in card
    assert "best lr" in card and "wrote" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [(["--methods", "red,sideways"], "method must be one of"), (["--lr", "1e-3"], "give --lrs instead")],
)
def test_cli_sweep_errors_say_how_to_fix(model_dir, tmp_path, args, message):
    result = cli("sweep", "--model", model_dir, "--data", SAMPLE, "--out", tmp_path, *args, check=False)
    assert result.returncode == 1 and message in result.stderr


def test_classification_sweep_picks_the_highest_accuracy_and_skips_forgetting(tmp_path):
    import transformers as tf

    corpus = [line.strip() for line in open("red_explorer/samples/sentiment.csv")]
    config = tf.BertConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=128, pad_token_id=3,
    )  # fmt: skip
    tf.BertForSequenceClassification(config).save_pretrained(tmp_path / "bert")
    tiny_tokenizer(corpus, chat=False).save_pretrained(tmp_path / "bert")
    loaded = load_model(str(tmp_path / "bert"), task="classification", num_labels=2, device="cpu")
    data = prepare_data(SAMPLE.replace("restaurants_e2e", "sentiment"), loaded.tokenizer,
                        DataConfig(task="classification", max_length=64, max_rows=24))  # fmt: skip
    sweep_config = SweepConfig(learning_rates=[1e-3, 1e-1], train=TrainConfig(max_steps=2, batch_size=8))
    result = run_sweep(loaded, data, [MethodSpec("red"), MethodSpec("lora")], sweep_config)
    assert result.metric == "val_accuracy" and result.higher_is_better and len(result.points) == 4
    for best in result.best:
        accuracies = [(p["after"], -i) for i, p in enumerate(result.points) if p["method"] == best["method"]]
        top, first = max(accuracies)  # ties: the first rate reaching the top accuracy
        assert best["after"] == top
        assert best["learning_rate"] == result.points[-first]["learning_rate"]
        assert "forgetting" not in best and "generation_overhead_attached" not in best and best["saved_bytes"] > 0


def test_sweep_has_help():
    result = cli("sweep", "--help")
    assert result.returncode == 0 and "--lrs" in result.stdout and "--methods" in result.stdout
