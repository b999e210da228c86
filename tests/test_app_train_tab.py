"""The Train tab over the registry (every method, its own learning rate), the runs it shows, and the run lists."""

import re
from pathlib import Path

import gradio as gr
import pytest
import transformers as tf
from app_helpers import save_tiny_llama, tiny_rows, write_csv

import red_explorer.app as app_package
from red_explorer.app.colours import text_colour
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.options import TrainOptions
from red_explorer.app.ui.events import _to_gradio, ui_event
from red_explorer.app.ui.handlers import common, export, train, train_methods
from red_explorer.app.ui.handlers import runs as your_runs
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.core.registry import DEFAULT_LEARNING_RATES, REGISTRY, MethodSpec

QUICK = dict(max_steps=1, batch_size=8, max_length=32, eval_every=0)
ONE_STEP = TrainOptions(max_steps=1, max_length=32, eval_every=None)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only contend


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny Llama whose linear layers carry biases (so that BitFit has some to train), and a small data file."""
    folder = save_tiny_llama(tmp_path_factory.mktemp("train-tab") / "model")
    model = tf.LlamaForCausalLM.from_pretrained(folder, attention_bias=True, mlp_bias=True)
    model.save_pretrained(folder)
    return folder, write_csv(folder.parent / "words.csv", tiny_rows(24))


def open_session(files) -> Session:
    bench = Workbench(ModelRegistry())
    bench.load_model(str(files[0]))
    bench.load_data(files[1])
    return Session(bench)


@pytest.fixture(scope="module")
def every_method(files):
    """A session that trained every registered method once, from the handler, each at its default rate."""
    session = open_session(files)
    session.outputs = list(train.train(session, list(train.METHOD_CHOICES), "full", ["ffn"], **QUICK))
    yield session
    session.close()


def test_every_registry_method_is_offered_and_trains_at_its_own_default_rate(every_method):
    offered = dict(train_methods.method_choices())
    assert sorted(offered.values()) == sorted(method.title for method in REGISTRY.values())
    assert "whole model on disk" in next(name for name, title in offered.items() if title == "full fine-tuning")
    runs = every_method.workbench.runs
    assert sorted(run.spec.method for run in runs.values()) == sorted(REGISTRY)
    assert {run.spec.method: run.record.learning_rate for run in runs.values()} == DEFAULT_LEARNING_RATES
    status, _, table = every_method.outputs[-1]
    assert "<b>Done.</b>" in status and list(table["method"]) == list(runs)
    fixed = common.colours(every_method.workbench)
    assert table.attrs[common.ROW_COLOURS] == [fixed[label] for label in runs]
    assert len(set(table.attrs[common.ROW_COLOURS])) == len(runs)  # up to ten runs never share a colour
    assert export.choices(every_method).choices == list(runs)  # every method's run can be exported


def test_learning_rates_come_from_the_boxes_and_the_table_else_the_registry():
    table = train_methods.default_rate_table()
    assert dict(table.values.tolist()) == {
        REGISTRY[name].title: DEFAULT_LEARNING_RATES[name] for name in train_methods.OTHER_METHODS
    }
    table.loc[table["method"] == "DoRA", "learning rate"] = 2e-4
    rates = train_methods.learning_rates(0.02, None, "", table)
    assert rates == DEFAULT_LEARNING_RATES | {"red": 0.02, "dora": 2e-4}
    as_api = {"headers": train_methods.RATE_COLUMNS, "data": [["LoReFT", 1e-3], ["BitFit", None]]}
    assert train_methods.learning_rates(None, None, None, as_api) == DEFAULT_LEARNING_RATES | {"loreft": 1e-3}
    with pytest.raises(ValueError, match="learning rate of IA3 must be a positive number"):
        train_methods.learning_rates(None, None, None, {"IA3": -1})
    with pytest.raises(ValueError, match="unknown method 'prefix'"):
        train_methods.build_specs(["prefix"], "full", ["ffn"], 8, 4, 2)
    specs = train_methods.build_specs(["full fine-tuning", "bitfit", "RED"], "bias", ["ffn"], 8, 4, 2)
    assert [spec.method for spec in specs] == ["red", "bitfit", "full"]  # the order of the list of methods


def test_runs_shown_redraws_only_the_picked_runs_in_their_colours(every_method):
    session, runs = every_method, list(every_method.workbench.runs.values())
    run_colour = common.colours(session.workbench).get
    choices, listed = train.shown_choices(session)
    assert listed == [run.label for run in runs] and choices.value == listed[-3:]  # the latest three at first
    picked = [runs[0], runs[3]]
    figure, table = train.show(session, [run.label for run in picked])
    assert figure.layout.title.text == "Training and validation loss on words.csv"  # the data the runs learned
    names = {trace.name: trace.line.color for trace in figure.data}
    assert names == {
        f"{run.label} · {kind}": run_colour(run.label) for run in picked for kind in ("train", "validation")
    }
    first = next(trace for trace in figure.data if trace.name == f"{runs[0].label} · train")
    assert list(first.y) == runs[0].result.train_loss
    assert list(table["method"]) == [run.label for run in picked]
    styling = _to_gradio(table)._compute()._translate(None, None)["cellstyle"]
    assert {style["props"][0][1] for style in styling} == {text_colour(run_colour(run.label)) for run in picked}
    empty, _ = train.show(session, [])
    assert empty.layout.annotations[0].text == train.NONE_PICKED
    later, _ = train.shown_choices(session, [runs[0].label], listed[:-1])  # the last run is new since then
    assert later.value == [runs[0].label, runs[-1].label]


def test_a_new_run_joins_the_picked_runs_in_the_plot(every_method):
    session = every_method
    kept = session.workbench.run("RED full (ffn)")
    *_, (_, figure, table) = list(train.train(session, ["RED"], "scale", ["ffn"], shown=[kept.label], **QUICK))
    new = session.workbench.run("RED scale (ffn)")
    assert list(table["method"]) == [kept.label, new.label]
    colours = {trace.name.split(" · ")[0]: trace.line.color for trace in figure.data}
    fixed = common.colours(session.workbench)
    assert colours == {kept.label: fixed[kept.label], new.label: fixed[new.label]}


def test_run_lists_keep_a_group_together_and_mark_runs_of_other_models(files, tmp_path):
    session = open_session(files)
    bench = session.workbench
    alone = bench.train(MethodSpec("red"), ONE_STEP).label
    first = bench.train(MethodSpec("red", variant="bias"), ONE_STEP, group="ablation A").label
    later = bench.train(MethodSpec("lora"), ONE_STEP).label
    second = bench.train(MethodSpec("red", variant="scale"), ONE_STEP, group="ablation A").label
    other_model = str(save_tiny_llama(tmp_path / "other", seed=1))
    bench.load_model(other_model)
    elsewhere = bench.train(MethodSpec("red", sites=["attn"]), ONE_STEP).label
    bench.load_model(str(files[0]))
    choices = common.run_choices(bench)
    assert choices.choices == [alone, first, second, later, elsewhere] and choices.value == second  # the latest
    assert choices.names == {
        first: f"ablation A › {first}",
        second: f"ablation A › {second}",
        elsewhere: f"{elsewhere} (other model: {other_model})",
    }
    update = _to_gradio(choices)
    assert update["choices"][1] == (f"ablation A › {first}", first) and update["value"] == second
    assert common.run_choices(bench, ("red",), other_models=False).choices == [alone, first, second]
    overview = your_runs.overview(session).split(f"**Other model: {plain(other_model)}**")
    assert len(overview) == 2 and elsewhere in overview[1] and elsewhere not in overview[0]
    with pytest.raises(gr.Error, match=f"trained on another base model \\({re.escape(other_model)}\\): load it"):
        ui_event(export.snippet)(session, elsewhere)
    session.close()


def test_no_message_speaks_of_runs_in_this_session():
    wording = re.compile(r"(in|to|for) this session|this session has", re.IGNORECASE)
    package = Path(app_package.__file__).parent
    found = [f"{path.name}: {line.strip()}" for path in package.rglob("*.py") for line in path.read_text().splitlines()]
    assert [line for line in found if wording.search(line)] == []
    with pytest.raises(ValueError, match="no RED run on this model yet"):
        common.pick_run(Workbench(ModelRegistry()), None, ("red",))
