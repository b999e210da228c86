"""The one-minute demos: valid presets, one end to end on a tiny model (2 steps), and the Model tab's demo action."""

import time
from dataclasses import replace

import pytest
from app_helpers import save_tiny_llama

from red_explorer.app.demo_presets import PRESETS, DemoPreset, run_preset
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.options import TrainOptions
from red_explorer.app.ui.handlers import common, explore, export, inspect, model
from red_explorer.app.ui.handlers.common import Choices
from red_explorer.app.ui.handlers.navigation import UNCHANGED, SelectTab
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Comparison, Workbench
from red_explorer.core.registry import MethodSpec
from red_explorer.data.bundled import SAMPLE_FOLDER

STEPS = 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(save_tiny_llama(tmp_path_factory.mktemp("demo") / "model"))


@pytest.fixture
def session():
    session = Session(Workbench(ModelRegistry()))
    yield session
    session.close()


def test_presets_name_bundled_samples_models_and_a_prompt_that_shows_the_change():
    assert [preset.name for preset in PRESETS.values()] == ["Teach it a style", "Data to text", "Classify sentiment"]
    style, table, sentiment = PRESETS.values()
    assert [spec.method for spec in style.methods] == ["red", "lora"] and style.sample == "pirate_style.jsonl"
    assert (table.sample, sentiment.sample) == ("restaurants_e2e.csv", "sentiment.csv")
    assert (sentiment.model, sentiment.task) == ("minilm", "classification")
    assert all(preset.prompt for preset in (style, table))
    options = style.train_options(style.methods[1])  # LoRA: its own learning rate, the preset's steps
    assert options.learning_rate == style.learning_rates["lora"] and options.max_steps == style.options.max_steps
    assert style.train_options(style.methods[0], max_steps=STEPS).max_steps == STEPS


def test_a_preset_without_a_sample_or_a_prompt_is_refused():
    spec, options = MethodSpec("red"), TrainOptions()
    with pytest.raises(ValueError, match="no bundled sample"):
        DemoPreset("x", "default", "causal-lm", "missing.csv", (spec,), options, "see", prompt="hi")
    with pytest.raises(ValueError, match="needs a prompt"):
        DemoPreset("x", "default", "causal-lm", "pirate_style.jsonl", (spec,), options, "see")
    with pytest.raises(ValueError, match="trains no method"):
        DemoPreset("x", "default", "causal-lm", "pirate_style.jsonl", (), options, "see", prompt="hi")


def test_the_style_preset_end_to_end_on_a_tiny_model(session, tiny):
    reports = []
    outcome = run_preset(session.workbench, PRESETS["style"], lambda *call: reports.append(call), tiny, STEPS)
    workbench = session.workbench
    assert [workbench.run(label).spec.method for label in outcome.labels] == ["red", "lora"]
    for label in outcome.labels:
        result = workbench.run(label).result
        assert len(result.train_loss) == STEPS and outcome.metrics[label] == (
            result.metrics_before,
            result.metrics_after,
        )
    stages = ["load model", "load data", "set up RED full (ffn)", "train RED full (ffn)", "set up LoRA r=8"]
    stages += ["train LoRA r=8", "first generation"]
    assert list(outcome.seconds) == stages and outcome.total_seconds == pytest.approx(sum(outcome.seconds.values()))
    texts = [text for _, text in reports]  # what the bar says before each method's first step: its set-up
    set_up = texts.index("setting up RED full (ffn): a copy of the base to train, the validation loss before")
    assert texts[set_up - 1] == "loading the sample pirate_style.jsonl" and texts[set_up + 1].startswith("training RED")
    assert isinstance(outcome.generation, Comparison)
    assert [generation.method for generation in outcome.generation.generations] == ["base", *outcome.labels]
    assert workbench.data.name == "pirate_style.jsonl" and workbench.data.detected.num_train <= 120
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert sum("training" in text for _, text in reports) == 2 * STEPS  # one report per step of each method


def test_the_demo_button_trains_fills_compare_and_switches_to_it(session, tiny, monkeypatch):
    monkeypatch.setitem(PRESETS, "style", replace(PRESETS["style"], model=tiny, options=TrainOptions(max_steps=STEPS)))
    monkeypatch.setattr(common, "POLL_SECONDS", 0.2)  # the page redraws often: the live curves are seen
    progress = []
    *running, outputs = model.run_demo(session, "style", lambda fraction, desc=None: progress.append(fraction))
    result, loss, info, diagram, _, status, spec, task, tab, prompt, runs, shown, cards, table = outputs
    labels = session.workbench.run_labels()
    assert "Teach it a style: done in" in result and "LoRA r=8" in result and "Compare" in result
    assert "| layers | 2 |" in info and "<svg" in diagram and "ready" in status and (spec, task) == (tiny, "causal-lm")
    assert tab == SelectTab("compare") and prompt == PRESETS["style"].prompt
    assert isinstance(runs, Choices) and runs.value == labels and len(labels) == 2
    assert cards.count("gen-card") == 3 and list(table["method"]) == ["base", *labels]
    assert "one batched call" in shown and progress[-1] == 1.0
    fixed = common.colours(session.workbench)
    assert {trace.name: trace.line.color for trace in loss.data if trace.name.endswith("train")} == {
        f"{label} · train": fixed[label] for label in labels
    }  # the final curves: each run in the colour it keeps everywhere
    assert loss.layout.title.text == "Training and validation loss on pirate_style.jsonl"
    for update in running:  # while it trains: its status, live curves and the model's panels, nothing else touched
        assert update[6:] == (UNCHANGED,) * 8 and "red-status" in update[0]
    assert any(len(update[1].data) > 0 for update in running)  # a curve while it still trains
    red_run = labels[0]  # RED, then LoRA: the tabs whose actions take RED only open on the RED run
    assert red_run.startswith("RED") and labels[1].startswith("LoRA")
    assert inspect.choices(session)[0].value == red_run and explore.choices(session)[0].value == red_run
    assert export.choices(session).value == red_run


def test_while_a_demo_loads_its_model_the_model_tab_says_so_then_shows_it(session, tiny, monkeypatch):
    monkeypatch.setitem(PRESETS, "style", replace(PRESETS["style"], model=tiny, options=TrainOptions(max_steps=STEPS)))
    monkeypatch.setattr(common, "POLL_SECONDS", 0.05)
    registry, load = session.workbench.registry, session.workbench.registry._loader
    monkeypatch.setattr(registry, "_loader", lambda *args, **options: (time.sleep(0.5), load(*args, **options))[1])
    assert "not loaded yet" in model.show_model(session)[0]  # no demo runs: the page says how to load one
    *running, outputs = model.run_demo(session, "style")
    shown = [update[2:6] for update in running if update[5] is not UNCHANGED]  # (summary, diagram, chart, status)
    name = model.model_name(tiny, "causal-lm")
    assert shown[0][0] == f"*◌ {name} is loading for the demo: its summary appears here when it is ready.*"
    assert shown[0][3].startswith(f"◌ Base model **{name}** (causal-lm) on cpu: loading for the demo")
    assert "| layers | 2 |" in shown[-1][0] and "<svg" in shown[-1][1] and ": ready" in shown[-1][3]  # before the end
    assert not any("not loaded" in text for update in shown for text in (update[0], update[3]))
    assert session.job is None and ": ready" in outputs[5] and "for the demo" not in model.model_status(session)


def test_the_sentiment_demo_reports_accuracy_and_leaves_compare_alone(session, tiny, monkeypatch):
    preset = replace(PRESETS["sentiment"], model=tiny, options=TrainOptions(max_steps=STEPS, max_length=32))
    monkeypatch.setitem(PRESETS, "sentiment", preset)
    session.workbench.load_model(tiny, "causal-lm")  # a causal-lm sample is loaded: the demo replaces it
    session.workbench.load_data(SAMPLE_FOLDER / "pirate_style.jsonl", max_rows=20)
    *_, outputs = model.run_demo(session, "Classify sentiment")  # the button's text works as well as the key
    result, tab = outputs[0], outputs[8]
    (label,) = session.workbench.run_labels()
    before, after = (
        session.workbench.run(label).result.metrics_before,
        session.workbench.run(label).result.metrics_after,
    )
    assert f"{before['accuracy']:.1%} → **{after['accuracy']:.1%}**" in result and "accuracy above" in result
    assert tab is UNCHANGED and outputs[9:] == (UNCHANGED,) * 5


def test_an_unknown_demo_is_refused(session):
    with pytest.raises(ValueError, match="unknown demo"):
        list(model.run_demo(session, "juggling"))
