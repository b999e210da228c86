"""The app's event handlers called as plain functions: values in, values and figures out (no browser)."""

import inspect as pyinspect
import time
import zipfile

import gradio as gr
import pandas as pd
import pytest
from app_helpers import TRAIN, new_session, write_csv

from red_explorer.app.model_registry import ModelKey, ModelRegistry
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import ablate, common, compare, data, explore, export, gallery, inspect, model, train
from red_explorer.app.ui.handlers.common import Choices, Notice
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.core.red.edit import red_vectors
from red_explorer.engine.analysis import layer_magnitudes, site_edits


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
    assert "SiLU(gate) ⊙ up" in diagram and "gated FFN (Llama style)" in diagram  # the loaded family's block
    counts = dict(zip(figure.data[0].y, figure.data[0].x, strict=True))
    assert counts["RED (FFN)"] == 128 and counts["RED (FFN + attention)"] == 256
    assert "ready" in status and str(files[0]) in status


def test_load_data_shows_format_preview_and_lengths(files):
    session = Session(Workbench(ModelRegistry()))
    summary, preview, figure = data.load_data(session, str(files[1]), "sentiment.csv", 0.1, 0, 64)
    assert "prompt/response pairs" in summary and "36 train, 4 validation" in summary
    assert isinstance(preview, pd.DataFrame) and list(preview.columns) == ["prompt", "response"]
    assert data.preview_widths(session).widths == ["50%", "50%"]  # the response gets half the width, not the rest
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


def test_stop_says_when_nothing_runs_and_stops_only_this_session(files):
    first, second = Session(Workbench(ModelRegistry())), Session(Workbench(ModelRegistry()))
    assert "Nothing is running" in common.stop(first) and not first.workbench.stop_event.is_set()
    with first.running("training"):
        assert "<b>Stopping</b> the training after this step…" in common.stop(first)
    assert first.workbench.stop_event.is_set() and not second.workbench.stop_event.is_set()
    assert first.job is None and "Nothing is running" in common.stop(first)
    with first.running(common.SWEEP_JOB):  # either tab's Stop button: a sweep ends after its point
        assert "<b>Stopping</b> the sweep after this point…" in common.stop(first)


def test_inspect_plots_what_the_run_learned(session):
    first, second, tare_choices = inspect.choices(session)
    assert first == Choices(["RED full (ffn)"], "RED full (ffn)") and second.value == inspect.NONE
    outputs = inspect.inspect(session, "RED full (ffn)", inspect.NONE)
    summary, layers_a, scale_a, bias_a, layers_b, _, _, distribution, top = outputs
    with session.workbench.attached("RED full (ffn)") as model:
        expected = layer_magnitudes(site_edits(red_vectors(model)))[0]
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
    empty.workbench.key = ModelKey(str(files[0]))  # a model with no gallery runs
    outputs = inspect.inspect_if_any(empty, None, None)
    assert outputs[0].startswith("*No RED run") and outputs[1].layout.annotations[0].text.startswith("Train")
    assert list(outputs[-1].columns) == inspect.TOP_COLUMNS  # an empty table with its real headers


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
    outputs = list(ablate.ablate(session, ["RED full (ffn)", "RED bias (ffn)"], 2, 8, 64, 1, 0))
    status, table, chart = outputs[-1]
    assert "<b>Done:</b> 2/2 rows" in status
    assert list(table["row"]) == ["RED full (ffn)", "RED bias (ffn)"]  # the rows as ticked: one name everywhere
    assert list(ablate.ROWS)[-2:] == ["LoRA r=8", "TARE E=4 k=2 (ffn)"] and len(ablate.ROWS) == 11
    assert chart.layout.title.text == "Metric against trainable parameters on words.csv"  # the data it read
    assert list(table["trainable params"]) == ["128", "64"]
    assert list(chart.data[0].x) == [128, 64]
    with pytest.raises(ValueError, match="tick at least one row"):
        list(ablate.ablate(session, []))


def test_compare_shows_every_method_with_latency(session):
    examples, runs, _ = compare.choices(session)
    assert examples.choices[0].startswith("#0: ") and runs.value == ["RED full (ffn)", "LoRA r=8"]
    shown, cards, table = compare.compare(session, "", examples.choices[1], runs.value, 8)
    assert "**Reference:**" in shown
    assert list(table["method"]) == ["base", "RED full (ffn)", "LoRA r=8"]
    assert list(table["seconds"]) == list(table["tokens/s"]) == [compare.SHARED] * 3  # one batched call: timed once
    assert all(isinstance(value, float) and 0 <= value <= 1 for value in table["ROUGE-L"])
    assert cards.count("gen-card") == 3 and cards.count("batched call") == 3 and "tok/s" not in cards
    assert "- base, RED full (ffn), LoRA r=8: one batched call of 3 rows, " in shown
    assert compare.example_index("#12: words") == 12 and compare.example_index("") is None


def test_every_compare_cell_holds_its_measure_or_says_why_it_has_none(session):
    _, _, table = compare.compare(session, "red cat", None, ["RED full (ffn)", "LoRA r=8"], 8)
    assert list(table["ROUGE-L"]) == [compare.NO_REFERENCE] * 3  # a typed prompt has no reference
    assert list(table["seconds"]) == [compare.SHARED] * 3
    assert table.isna().sum().sum() == 0  # no blank cell
    assert f"“{compare.SHARED}”" in compare.TABLE_TITLE and f"“{compare.NO_REFERENCE}”" in compare.TABLE_TITLE
    alone = compare.Generation("TARE x", "p", "text", 10, 0.5, 20.0)
    own = compare._table([alone], set(), {})  # a run in a call of its own: its own time and pace
    assert (own.iloc[0]["seconds"], own.iloc[0]["tokens/s"]) == (0.5, 20.0)


def test_compare_and_generate_live_fill_the_bar_token_by_token(session):
    bar, runs, decoding = Recorder(), ["RED full (ffn)", "LoRA r=8"], (8, False, 0.7, 1.0, 0)
    _, cards, table = compare.compare(session, "red cat", None, runs, *decoding, progress=bar)
    assert list(table["text"]) == list(compare.compare(session, "red cat", None, runs, *decoding)[2]["text"])
    assert bar.calls[0] == (0.0, "generating up to 8 tokens for base + 2 runs") and bar.calls[-1] == (1.0, "done")
    fractions = [fraction for fraction, _ in bar.calls]
    assert fractions == sorted(fractions) and len(fractions) >= 3  # a step or more, then done
    assert bar.calls[1][1].startswith("generating for base + 2 runs: token 1 of 8 · about ")
    live = Recorder()
    _, _, again = gallery.generate_live(session, "red cat", None, runs, *decoding, progress=live)
    assert list(again["text"]) == list(table["text"]) and cards.count("gen-card") == 3
    assert live.calls[0] == bar.calls[0] and live.calls[-1] == (1.0, "done")


def test_explore_and_export_default_to_the_latest_red_run(session):
    """A LoRA run trained after a RED run (as a demo does) is not the default where RED-only actions wait."""
    assert session.workbench.run_labels() == ["RED full (ffn)", "LoRA r=8"]
    assert explore.choices(session)[0].value == "RED full (ffn)"
    assert export.choices(session).value == "RED full (ffn)"
    assert explore.choices(session, "LoRA r=8")[0].value == "LoRA r=8"  # a chosen run stays chosen
    assert export.choices(session, "LoRA r=8").value == "LoRA r=8"


def test_export_import_and_snippet(session, tmp_path):
    path, snippet = export.export_edits(session, "RED full (ffn)")
    assert zipfile.ZipFile(path).namelist() and "load_method" in snippet and path.endswith("edits.zip")
    merged, status = export.export_merged(session, "RED full (ffn)")
    assert "config.json" in zipfile.ZipFile(merged).namelist() and "Merged model of RED full (ffn)** ready" in status
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

    def marking(session):
        return Notice(("text", common.Visible(False), common.ColumnWidths(["50%", "50%"])), "most rows are cut")

    with pytest.warns(UserWarning, match="most rows are cut"):  # gr.Warning outside a request warns
        text, hidden, widths = ui_event(marking)(None)
    assert text == "text" and hidden["visible"] is False and widths["column_widths"] == ["50%", "50%"]
    session = Session(Workbench(ModelRegistry()))
    with pytest.raises(gr.Error):
        ui_event(failing)(session, "x")
    assert session.last_error == "bad <file> name"  # kept for the event that restores the page


def test_closing_a_session_frees_its_memory_and_keeps_its_runs(files):
    session = new_session(files)
    list(train.train(session, ["RED"], "full", ["ffn"], **(TRAIN | {"max_steps": 1})))
    bench = session.workbench
    session.close()
    assert bench.data is None and session._workbench is None
    assert list(bench.runs) == ["RED full (ffn)"]  # kept on disk for the owner's next visit


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
    summary, layers_a, scale_a, bias_a, layers_b, scale_b, bias_b, _, _ = inspect.inspect(
        session, first.value, second.value
    )
    assert {trace.name for trace in layers_a.data} == {"FFN output"}
    assert {trace.name for trace in layers_b.data} == {"attention output"}
    assert scale_b.layout.annotations[0].text == "RED bias (attn) learns no scale"
    shown = inspect.panels_shown(session, first.value, second.value)
    assert [panel.shown for panel in shown] == [True, True, True, True]  # A scale | B's note, A bias | B bias
    assert scale_a.layout.height == scale_b.layout.height >= 300  # A scale and B's note, one height
    assert bias_a.layout.height == bias_b.layout.height  # a row's two heatmaps line up
    assert list(bias_b.data[0].y) == ["L0 attn", "L1 attn"]
    assert "RED full (ffn)" in summary and "RED bias (attn)" in summary


# ---------------------------------------------------------------- what a first user meets


def test_summary_shows_set_up_and_step_time_and_peak_memory_only_on_a_gpu(session):
    runs = [session.workbench.run("RED full (ffn)")]
    record = runs[0].record  # the set-up and step time are kept with the run
    assert record.setup_seconds > 0 and record.seconds_per_step > 0
    on_cpu = train.summary_table(runs, 1000, "cpu")
    assert on_cpu.iloc[0]["set-up (s)"] == round(record.setup_seconds, 1)
    assert on_cpu.iloc[0]["s/step"] == round(record.seconds_per_step, 2)
    assert not any("memory" in column for column in on_cpu.columns)
    on_gpu = train.summary_table(runs, 1000, "cuda:0")
    assert on_gpu.iloc[0]["peak GPU memory"] == common.megabytes(runs[0].result.peak_memory_bytes)
    assert list(train.summary_table([], 1000).columns) == train.SUMMARY_COLUMNS


def test_a_refused_edits_zip_leaves_the_runs_and_says_so(session, tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(gr.Error, match="bad.zip was not loaded.*Your runs on this model: RED full"):
        ui_event(export.import_edits)(session, str(bad))
    status, choices, upload = export.restore_after_failure(session, "LoRA r=8")
    assert status.startswith("✕ **bad.zip was not loaded") and "Loaded" not in status
    assert choices == Choices(["RED full (ffn)", "LoRA r=8"], "LoRA r=8") and upload is None


def test_compare_is_one_batched_call_and_says_what_it_timed(session, monkeypatch):
    from red_explorer.app import workbench as workbench_module

    calls, real = [], workbench_module.compare_batched

    def recording(model, tokenizer, prompts, runs, settings=None, *rest, **options):
        calls.append(([run.label for run in runs], settings.max_new_tokens))
        return real(model, tokenizer, prompts, runs, settings, *rest, **options)

    monkeypatch.setattr(workbench_module, "compare_batched", recording)
    shown, _, table = compare.compare(session, "red cat", None, ["RED full (ffn)"], 8)
    assert calls == [(["RED full (ffn)"], 8)]
    assert "base, RED full (ffn): one batched call" in shown and "untimed 2-token warm-up" in shown
    assert list(table.columns) == compare.TABLE_COLUMNS


def test_a_refused_merge_stays_on_the_export_tab(session, monkeypatch):
    from red_explorer.app import run_files
    from red_explorer.core.method import MergeError

    def refuse(model, target, tokenizer=None):
        raise MergeError("the merged model differs from the edited one by 1e-01 of the logit scale")

    monkeypatch.setattr(run_files, "save_merged", refuse)
    with pytest.raises(gr.Error, match="differs from the edited one"):
        ui_event(export.export_merged)(session, "RED full (ffn)")
    file, status = ui_event(export.export_failed)(session)
    assert file is None and status == "✕ **the merged model differs from the edited one by 1e-01 of the logit scale**"


def test_inspect_pairs_the_same_quantity_of_the_two_runs_in_one_row():
    from red_explorer.app.ui.components import inspect as inspect_tab

    with gr.Blocks():
        inspect_tab.build(gr.State())
        blocks = gr.context.get_blocks_context().blocks.values()
        found = {block.elem_id: block for block in blocks if block.elem_id}
    rows = []
    for elem, _ in inspect_tab.PANELS:
        a, b = found[f"{elem}-a"], found[f"{elem}-b"]
        assert a.parent is b.parent and isinstance(a.parent, gr.Row)
        assert a.parent.children.index(a) < a.parent.children.index(b)  # A left of B
        rows.append(a.parent)
    assert len({id(row) for row in rows}) == 3  # per layer, scale − 1, bias: a row each
