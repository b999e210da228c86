"""What a first user meets in the app, through its handlers: refusals that keep what works, warnings, Stop, axes."""

import time

import gradio as gr
import numpy as np
import pytest
import torch
import transformers as tf
from app_helpers import TRAIN, new_session
from test_library_fixes import tiny_moe
from tiny_models import DECODER

from red_explorer.app.model_info import model_info
from red_explorer.app.model_registry import ModelKey, ModelRegistry
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import ablate, common, data, inspect, model, train
from red_explorer.app.ui.handlers.common import Notice
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.engine.step_timing import StepTiming
from red_explorer.models.loading import LoadedModel


def test_a_refused_model_keeps_the_working_one_and_the_page_shows_it(files):
    session = Session(Workbench(ModelRegistry()))
    model.load_model(session, str(files[0]), "causal-lm", "auto", "auto")
    with pytest.raises(gr.Error, match="was not loaded.*still uses"):
        ui_event(model.load_model)(session, "/no/such/model", "classification", "auto", "auto")
    assert session.workbench.key.spec == str(files[0]) and session.workbench.model_status() == "ready"
    info, diagram, figure, status, spec, task, device, dtype, quantize = model.restore_after_failure(
        session, "/no/such/model", "classification", "auto", "auto", "8bit"
    )
    assert info.startswith("> ✕ **/no/such/model was not loaded") and "| layers | 2 |" in info
    assert "<svg" in diagram and "RED (FFN)" in figure.data[0].y and "ready" in status
    assert (spec, task, device, dtype) == (str(files[0]), "causal-lm", "auto", "auto")  # the controls say what runs
    assert quantize == "none"


def test_default_for_classification_says_it_means_minilm():
    session = Session(Workbench(ModelRegistry()))
    session.workbench.key = ModelKey("default", "classification")
    assert "MiniLM" in model.model_status(session) and "MiniLM" in model.model_name("default", "classification")
    assert "SmolLM2" in model.model_name("default", "causal-lm") and model.model_name("x/y", "causal-lm") == "x/y"


@pytest.mark.parametrize(
    ("architecture", "drawn", "absent"),
    [
        ("llama", ["gate, up", "SiLU(gate) ⊙ up", "pre-norm"], ["post-norm"]),
        ("gpt2", ["c_fc → GELU", "GPT-2 style"], ["gate"]),
        ("bert", ["intermediate → GELU", "post-norm", "BERT style"], ["gate"]),
    ],
)
def test_the_diagram_draws_the_loaded_family(architecture, drawn, absent):
    from tiny_models import tiny_model

    network = tiny_model(architecture)
    task = "classification" if architecture == "bert" else "causal-lm"
    loaded = LoadedModel(network, None, architecture, task, torch.device("cpu"), torch.float32)
    html = model.diagram_html(model_info(loaded), activation=model.activation_name(network.config))
    assert all(text in html for text in drawn) and not any(text in html for text in absent)
    wide, narrow = (float(svg.split('viewBox="0 0 ')[1].split()[0]) for svg in html.split("<svg")[1:3])
    assert narrow < 720 < 1000 < wide  # the stacked drawing fits a phone-width page


def test_a_mixture_of_experts_model_shows_which_layers_red_reaches():
    network = tiny_moe("qwen2_moe")  # 4 layers; 1 and 3 are expert blocks
    info = model_info(LoadedModel(network, None, "moe", "causal-lm", torch.device("cpu"), torch.float32))
    assert (info.num_layers, info.edited_layers) == (4, 2) and "model.layers.1, model.layers.3" in info.notes[0]
    assert "LoRA (r=8)" not in info.parameter_counts  # PEFT has no default projections for Qwen2-MoE
    text = model.info_markdown(info)
    assert "| layers | 4 |" in text and "output, 2 of 4 layers" in text
    assert f"2 × 32 × 2 = **{info.parameter_counts['RED (FFN)']:,}**" in text and "target_modules" in text


def test_an_all_experts_model_is_described_with_red_on_its_attention_output():
    config = tf.MixtralConfig(**(DECODER | {"num_local_experts": 4, "num_experts_per_tok": 2}))
    network = tf.MixtralForCausalLM(config)
    info = model_info(LoadedModel(network, None, "mixtral", "causal-lm", torch.device("cpu"), torch.float32))
    assert (info.num_layers, info.edited_layers, info.ffn_module) == (2, 0, "")
    assert info.parameter_counts["RED (attention)"] == 2 * 32 * 2 and "RED (FFN)" not in info.parameter_counts
    text = model.info_markdown(info)
    assert "`model.layers.{i}.self_attn.o_proj` output (no FFN output is dense), 2 layers" in text
    assert "mixture of experts" in text and "attention output" in text
    assert "on the output of self_attn.o_proj" in model.diagram_html(info, activation="silu")


def test_a_refused_upload_leaves_the_loaded_data_on_the_page(files, tmp_path):
    session = new_session(files)
    bad = tmp_path / "colours.csv"
    bad.write_text("colour,size\nred,3\nblue,4\ngreen,5\nred,6\n")
    with pytest.raises(gr.Error, match="colours.csv was not loaded.*Still loaded: words.csv"):
        ui_event(data.load_data)(session, str(bad), None, 0.1, 0, 64)
    summary, preview, figure, upload = data.restore_after_failure(session, 64)
    assert summary.startswith("> ✕ **colours.csv was not loaded") and "### words.csv" in summary
    assert list(preview.columns) == ["prompt", "response"] and upload is None
    assert [len(trace.x) for trace in figure.data] == [36, 4]
    empty = Session(Workbench(ModelRegistry()))
    empty.last_error = "x.csv was not loaded: no columns. No data is loaded."
    summary, preview, _, _ = data.restore_after_failure(empty, 64)
    assert "No data is loaded" in summary and list(preview.columns) == [data.NO_DATA_COLUMN]


def test_most_examples_over_max_length_is_a_warning_with_a_length_that_fits(files):
    session = new_session(files)
    lengths = session.workbench.data.lengths()["train"]
    cut = min(lengths) - 1  # every example is one token too long
    warning = data.length_warning(session.workbench.data, cut)
    suggested = data.suggested_length(lengths)
    fitting = sum(length <= suggested for length in lengths) / len(lengths)
    assert suggested % 16 == 0 and fitting >= 0.9 and sum(length <= suggested - 16 for length in lengths) < 0.9 * 36
    assert f"Try max length {suggested}" in warning and f"of {len(lengths)})" in warning
    assert warning in data.length_note(session, cut) and "⚠" in data.length_note(session, cut)
    assert data.length_warning(session.workbench.data, max(lengths)) == ""
    summary, _, _ = data.show_data(session, cut)
    assert "⚠" in summary
    outputs = list(train.train(session, ["RED"], "full", ["ffn"], **(TRAIN | {"max_steps": 1, "max_length": cut})))
    assert isinstance(outputs[0], Notice) and outputs[0].warning == warning  # said before the first step


def test_max_steps_extends_past_one_epoch(files):
    session = new_session(files)  # 36 training rows: 5 batches of 8 per epoch
    status, figure, table = list(train.train(session, ["RED"], "full", ["ffn"], **(TRAIN | {"max_steps": 7})))[-1]
    assert len(session.workbench.run("RED full (ffn)").result.train_loss) == 7
    assert list(figure.data[0].x) == list(range(1, 8)) and figure.layout.xaxis.dtick == 1


def test_timing_separates_set_up_from_the_steady_step():
    timing = StepTiming(started=100.0)
    for seconds, now in ((4.0, 112.0), (1.0, 113.0), (1.5, 114.5), (1.2, 115.7)):
        timing.record(seconds, now)
    assert timing.setup == pytest.approx(8.0)  # 112 − 100 − 4: before the first step began
    assert timing.per_step == pytest.approx(1.2)  # median of the steps after the first


def test_stop_is_acknowledged_at_once_and_ends_after_one_step(files):
    session, stopped_at = new_session(files), []
    real_train = session.workbench.train

    def click_stop_after_first_step(spec, options, callback=None):
        def report(event):
            callback(event)
            if not stopped_at:
                stopped_at.append(common.stop(session))  # as the Stop button does, mid-run
            time.sleep(0.3)

        return real_train(spec, options, report)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(common, "POLL_SECONDS", 0.05)
        patch.setattr(session.workbench, "train", click_stop_after_first_step)
        outputs = list(train.train(session, ["RED", "LoRA"], "full", ["ffn"], **(TRAIN | {"max_steps": 20})))
    assert "<b>Stopping</b> the training after this step…" in stopped_at[0]
    assert any("<b>Stopping</b> RED full (ffn) after this step" in status for status, _, _ in outputs[:-1])
    status, _, table = outputs[-1]
    assert "<b>Stopped.</b>" in status and list(table["method"]) == ["RED full (ffn)"]  # LoRA never started
    assert len(session.workbench.run("RED full (ffn)").result.train_loss) == 1 and session.job is None


def test_a_lora_only_run_is_not_sent_to_inspect_for_red(files):
    session = new_session(files)
    status, _, _ = list(train.train(session, ["LoRA"], "full", ["ffn"], **(TRAIN | {"max_steps": 1})))[-1]
    assert "<b>Done.</b>" in status and "Inspect" not in status and "<b>Compare</b>" in status


def test_training_or_an_ablation_without_data_says_why_instead_of_running(files):
    session = Session(Workbench(ModelRegistry()))
    model.load_model(session, str(files[0]), "causal-lm", "auto", "auto")
    with pytest.raises(gr.Error, match="no data loaded yet"):
        list(ui_event(ablate.ablate)(session, ["RED full (ffn)"], 2, 8, 64, 1, 0))
    status, table, chart = ablate.restore_after_failure(session)
    assert "✕" in status and "no data loaded yet" in status and "Running" not in status
    assert list(table.columns) == ablate.COLUMNS and len(table) == 0 and session.job is None
    with pytest.raises(gr.Error, match="no data loaded yet"):  # refused before any "Training…" status
        list(ui_event(train.train)(session, ["RED"], "full", ["ffn"]))
    status, _, table = train.restore_after_failure(session)
    assert "no data loaded yet" in status and list(table.columns) == train.SUMMARY_COLUMNS


def test_two_runs_side_by_side_share_axes_and_colours(files):
    session = new_session(files)
    list(train.train(session, ["RED"], "full", ["ffn"], **(TRAIN | {"max_steps": 2})))
    list(train.train(session, ["RED"], "scale", ["ffn"], **(TRAIN | {"max_steps": 2})))
    outputs = inspect.inspect(session, "RED full (ffn)", "RED scale (ffn)")
    _, layers_a, scale_a, _, layers_b, scale_b, bias_b, _, _ = outputs
    assert scale_a.data[0].zmax == scale_b.data[0].zmax
    edits = [session.workbench.red_edits(label) for label in ("RED full (ffn)", "RED scale (ffn)")]
    largest = max(np.abs(edit.scale - 1).max() for run in edits for edit in run)
    assert scale_a.data[0].zmax == pytest.approx(largest)
    assert layers_a.layout.yaxis.range == layers_b.layout.yaxis.range
    assert len(layers_b.data) == 1 and layers_b.layout.yaxis.title.text.startswith("mean |scale − 1|")  # no bias bars
    assert "mean \\|bias\\|" not in outputs[0].split("**RED scale (ffn)**")[1]  # nor a bias figure in its summary
    alone = inspect.panels_shown(session, "RED full (ffn)", inspect.NONE)
    assert [panel.shown for panel in alone] == [True, True, False, False]  # no column of empty panels
    assert [panel.shown for panel in inspect.panels_shown(session, "RED full (ffn)", "RED scale (ffn)")] == [
        True,
        True,
        True,
        True,  # B's bias cell, next to A's bias, says B learns no bias
    ]
    assert bias_b.layout.annotations[0].text == "RED scale (ffn) learns no bias"


def test_plural_and_empty_tables_have_real_headers():
    assert common.plural(1, "row") == "1 row" and common.plural(2, "row") == "2 rows"
    assert list(ablate.results_table([]).columns) == ablate.COLUMNS
    assert list(data.preview_table(None).columns) == [data.NO_DATA_COLUMN]
