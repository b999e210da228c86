"""The app's event handlers called as plain functions: values in, values and figures out (no browser)."""

import inspect as pyinspect
import time
import zipfile

import gradio as gr
import pandas as pd
import pytest
from app_helpers import save_tiny_llama, tiny_rows, write_csv

from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import ablate, common, compare, data, export, inspect, model, train
from red_explorer.app.ui.handlers.common import Choices
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.core.red.edit import red_vectors
from red_explorer.engine.analysis import layer_magnitudes, site_edits

TRAIN = dict(max_steps=3, batch_size=8, max_length=64, eval_every=2)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    return save_tiny_llama(folder / "model"), write_csv(folder / "words.csv", tiny_rows(40))


def new_session(files) -> Session:
    session = Session(Workbench(ModelRegistry()))
    model.load_model(session, str(files[0]), "causal-lm", "auto", "auto")
    data.load_data(session, str(files[1]), None, 0.1, 0, 64)
    return session


class Recorder:
    """Stands in for gr.Progress: keeps every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, fraction, desc=None, **kwargs):
        self.calls.append((fraction, desc))


@pytest.fixture(scope="module")
def session(files):
    """A session with RED and LoRA trained through the train handler."""
    session = new_session(files)
    recorder, real_train = Recorder(), session.workbench.train

    def unhurried_train(spec, options, callback=None):
        """The real training, with each step reported 0.2 s late: the UI polls several times per run."""
        return real_train(spec, options, lambda event: (callback(event), time.sleep(0.2)))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(common, "POLL_SECONDS", 0.05)
        patch.setattr(session.workbench, "train", unhurried_train)
        outputs = list(train.train(session, ["RED", "LoRA"], "full", ["ffn"], progress=recorder, **TRAIN))
    session.outputs, session.progress_calls = outputs, recorder.calls
    yield session
    session.close()


def test_load_model_describes_the_architecture(files):
    session = Session(Workbench(ModelRegistry()))
    info, diagram, figure, status = model.load_model(session, str(files[0]), "causal-lm", "auto", "auto")
    assert "| layers | 2 |" in info and "| hidden size | 32 |" in info and "**128**" in info
    assert "<svg" in diagram and "down_proj" in diagram and "scale ⊙ h + bias" in diagram
    counts = dict(zip(figure.data[0].y, figure.data[0].x, strict=True))
    assert counts["RED (FFN)"] == 128 and counts["RED (FFN + attention)"] == 256
    assert "ready" in status and str(files[0]) in status


def test_load_data_shows_format_preview_and_lengths(files):
    session = Session(Workbench(ModelRegistry()))
    summary, preview, figure = data.load_data(session, str(files[1]), "sentiment.csv", 0.1, 0, 64)
    assert "prompt/response pairs" in summary and "36 train, 4 validation" in summary
    assert isinstance(preview, pd.DataFrame) and list(preview.columns) == ["prompt", "response"]
    train_split = session.workbench.data.probe.raw["train"]
    assert len(preview) == 8 and list(preview["prompt"]) == train_split["prompt"][:8]
    assert [len(trace.x) for trace in figure.data] == [36, 4]
    assert figure.layout.shapes[0].x0 == 64


def test_a_sample_meant_for_another_task_says_so(files):
    session = Session(Workbench(ModelRegistry()))
    model.load_model(session, str(files[0]), "causal-lm", "auto", "auto")
    summary, preview, _ = data.load_data(session, None, "sentiment.csv", 0.1, 20, 64)
    assert "meant for **classification**" in summary and len(preview) == 8


def test_missing_or_unknown_data_is_a_clear_error(files):
    session = Session(Workbench(ModelRegistry()))
    with pytest.raises(ValueError, match="upload a data file"):
        data.load_data(session, None, None)
    with pytest.raises(ValueError, match="unknown sample"):
        data.load_data(session, None, "secrets.csv")


def test_train_streams_progress_and_ends_with_a_summary(session):
    status, figure, table = session.outputs[-1]
    assert "<b>Done.</b>" in status and "RED full (ffn)" in status and "LoRA r=8" in status
    runs = session.workbench.runs
    assert list(table["method"]) == ["RED full (ffn)", "LoRA r=8"]
    red = runs["RED full (ffn)"].result
    assert table.iloc[0]["trainable params"] == "128"
    assert table.iloc[0]["val loss before"] == round(red.metrics_before["loss"], 4)
    assert table.iloc[0]["val loss after"] == round(red.metrics_after["loss"], 4)
    traces = {trace.name: trace for trace in figure.data}
    assert list(traces["RED full (ffn) · train"].y) == red.train_loss
    validation = traces["RED full (ffn) · validation"]
    assert list(validation.x) == [0, 2, 3] and validation.y[0] == red.metrics_before["loss"]
    assert validation.y[-1] == red.metrics_after["loss"]
    fractions = [fraction for fraction, _ in session.progress_calls]
    assert fractions and fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1
    assert all(": step " in desc for _, desc in session.progress_calls)
    statuses = [status for status, _, _ in session.outputs[:-1]]
    assert statuses and all("<b>Training " in status and "red-bar" in status for status in statuses)


def test_method_choices_are_validated():
    with pytest.raises(ValueError, match="tick at least one method"):
        train.build_specs([], "full", ["ffn"], 8, 4, 2)
    with pytest.raises(ValueError, match="at least one site"):
        train.build_specs(["RED"], "full", [], 8, 4, 2)
    specs = train.build_specs(["TARE", "RED", "LoRA"], "bias", ["ffn", "attn"], 4, 3, 1)
    assert [spec.label for spec in specs] == ["RED bias (ffn+attn)", "LoRA r=4", "TARE E=3 k=1 (ffn+attn)"]


def test_stop_sets_only_this_sessions_flag(files):
    first, second = Session(Workbench(ModelRegistry())), Session(Workbench(ModelRegistry()))
    assert "<b>Stopping</b>" in train.stop(first)
    assert first.workbench.stop_event.is_set() and not second.workbench.stop_event.is_set()


def test_inspect_plots_what_the_run_learned(session):
    first, second, tare_choices = inspect.choices(session)
    assert first == Choices(["RED full (ffn)"], "RED full (ffn)") and second.value == inspect.NONE
    outputs = inspect.inspect(session, "RED full (ffn)", inspect.NONE)
    summary, layers_a, scale_a, bias_a, layers_b, _, _, distribution, top = outputs
    expected = layer_magnitudes(site_edits(red_vectors(session.workbench.run("RED full (ffn)").model)))[0]
    assert list(layers_a.data[0].y) == pytest.approx(expected.scale)
    assert list(layers_a.data[1].y) == pytest.approx(expected.bias)
    assert scale_a.data[0].z.shape == (2, 32) and bias_a.data[0].z.shape == (2, 32)
    assert layers_b.layout.annotations[0].text.startswith("Pick a second run")
    assert "2 edited sites, 128 learned values" in summary
    assert len(top) == 12 and top["|scale − 1| + |bias|"].is_monotonic_decreasing
    assert [trace.name for trace in distribution.data] == ["scale − 1", "bias"]


def test_inspect_refuses_lora_runs_and_explains_an_empty_session(session, files):
    with pytest.raises(ValueError, match="LORA run"):
        inspect.inspect(session, "LoRA r=8")
    empty = Session(Workbench(ModelRegistry()))
    outputs = inspect.inspect_if_any(empty, None, None)
    assert outputs[0].startswith("*No RED run") and outputs[1].layout.annotations[0].text.startswith("Train a RED")


def test_tare_view_routes_each_token(files):
    session = new_session(files)
    list(train.train(session, ["TARE"], "full", ["ffn"], **(TRAIN | {"max_steps": 1})))
    routing, usage, editors = inspect.tare_view(session, None, "red cat sings")
    assert routing.data[0].z.shape[0] == 2 and len(routing.layout.xaxis.ticktext) == routing.data[0].z.shape[1]
    assert sum(usage.data[0].y) == pytest.approx(2.0)  # k = 2 editors per token
    assert editors.data[0].z.shape == (2, 4)
    with pytest.raises(ValueError, match="type a text"):
        inspect.tare_view(session, None, " ")


def test_ablate_two_rows(files):
    session = new_session(files)
    outputs = list(ablate.ablate(session, ["RED full · FFN", "RED bias only · FFN"], 2, 8, 64, 1, 0))
    status, table, chart = outputs[-1]
    assert "<b>Done:</b> 2/2 rows" in status
    assert list(table["row"]) == ["RED full (ffn)", "RED bias (ffn)"]
    assert list(table["trainable params"]) == ["128", "64"]
    assert list(chart.data[0].x) == [128, 64]
    with pytest.raises(ValueError, match="tick at least one row"):
        list(ablate.ablate(session, []))


def test_compare_shows_every_method_with_latency(session):
    examples, runs = compare.choices(session)
    assert examples.choices[0].startswith("#0: ") and runs.value == ["RED full (ffn)", "LoRA r=8"]
    shown, cards, table = compare.compare(session, "", examples.choices[1], runs.value, 8)
    assert "**Reference:**" in shown
    assert list(table["method"]) == ["base", "RED full (ffn)", "LoRA r=8"]
    assert all(table["seconds"] > 0) and table["ROUGE-L"].notna().all()
    assert cards.count("gen-card") == 3 and "tok/s" in cards
    assert compare.example_index("#12: words") == 12 and compare.example_index("") is None


def test_export_import_and_snippet(session, tmp_path):
    path, snippet = export.export_edits(session, "RED full (ffn)")
    assert zipfile.ZipFile(path).namelist() and "load_method" in snippet and path.endswith("edits.zip")
    merged = export.export_merged(session, "RED full (ffn)")
    assert "config.json" in zipfile.ZipFile(merged).namelist()
    other = Session(Workbench(session.workbench.registry))
    other.workbench.load_model(session.workbench.key.spec)
    status, choices = export.import_edits(other, path)
    assert "Loaded RED full (ffn) (imported)" in status and choices.value == "RED full (ffn) (imported)"
    assert export.snippet_if_any(Session(Workbench(ModelRegistry())), None).startswith("# Train a run")
    with pytest.raises(ValueError, match="upload the .zip"):
        export.import_edits(other, None)


def test_ui_event_turns_errors_into_messages_and_choices_into_updates():
    def failing(session, name, progress=None):
        raise ValueError("bad <file> name")

    def choosing(session):
        return "text", Choices(["a", "b"], "b")

    def streaming(session):
        yield "first"
        raise KeyError("boom")

    with pytest.raises(gr.Error) as raised:
        ui_event(failing)(None, "x")
    assert raised.value.message == "bad &lt;file&gt; name"
    assert isinstance(pyinspect.signature(ui_event(failing)).parameters["progress"].default, gr.Progress)
    text, update = ui_event(choosing)(None)
    assert text == "text" and update["choices"] == ["a", "b"] and update["value"] == "b"
    events = ui_event(streaming)(None)
    assert next(events) == "first"
    with pytest.raises(gr.Error, match="boom"):
        next(events)


def test_closing_a_session_frees_its_runs(files):
    session = new_session(files)
    list(train.train(session, ["RED"], "full", ["ffn"], **(TRAIN | {"max_steps": 1})))
    bench = session.workbench
    session.close()
    assert bench.runs == {} and session._workbench is None


def test_classification_reports_accuracy_and_compare_refuses(files, tmp_path):
    rows = [
        {"text": f"{word} {word} cat", "label": "warm" if word in ("red", "happy") else "cold"}
        for word in ["red", "blue", "happy", "sad"] * 6
    ]
    session = Session(Workbench(ModelRegistry()))
    info, _, _, status = model.load_model(session, str(files[0]), "classification", "auto", "auto")
    assert "classification" in status and "LlamaForSequenceClassification" in info
    summary, _, _ = data.load_data(session, str(write_csv(tmp_path / "labels.csv", rows)), None, 0.25, 0, 32)
    assert "2 labels (cold, warm)" in summary
    status, _, table = list(train.train(session, ["RED"], "full", ["ffn"], **(TRAIN | {"max_steps": 2})))[-1]
    assert session.workbench.loaded().model.config.num_labels == 2
    assert 0 <= table.iloc[0]["accuracy after"] <= 1 and "accuracy before" in table.columns
    with pytest.raises(ValueError, match="needs a causal-lm model"):
        compare.compare(session, "red red cat")


def test_inspect_puts_two_runs_side_by_side(files):
    session = new_session(files)
    list(train.train(session, ["RED"], "full", ["ffn"], **(TRAIN | {"max_steps": 1})))
    list(train.train(session, ["RED"], "bias", ["attn"], **(TRAIN | {"max_steps": 1})))
    first, second, _ = inspect.choices(session, "RED full (ffn)", "RED bias (attn)")
    assert (first.value, second.value) == ("RED full (ffn)", "RED bias (attn)")
    summary, layers_a, _, _, layers_b, scale_b, bias_b, _, _ = inspect.inspect(session, first.value, second.value)
    assert {trace.name for trace in layers_a.data} == {"ffn"} and {trace.name for trace in layers_b.data} == {"attn"}
    assert scale_b.layout.annotations[0].text == "RED bias (attn) learns no scale"
    assert list(bias_b.data[0].y) == ["L0 attn", "L1 attn"]
    assert "RED full (ffn)" in summary and "RED bias (attn)" in summary
