"""The Explore tab's handlers called as plain functions: strength, dose-response, token drift, layers, arithmetic."""

import re
import shutil
from dataclasses import replace
from html import unescape

import pytest
import torch
from app_helpers import QUICK, TRAIN, new_session, save_tiny_llama, tiny_rows, write_csv

from red_explorer.app.exploring import DOSE_STRENGTHS, Explorer
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.options import APP_DECODING, TrainOptions, decoding_text
from red_explorer.app.ui.handlers import common, compare, data, explore, export, model, train
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.core.registry import MethodSpec
from red_explorer.engine.generation import chat_prompt
from red_explorer.explore.gguf_file import read_control_vector
from red_explorer.explore.runs import read_red_run

OPTIONS = TrainOptions(learning_rate=0.05, max_steps=3, batch_size=8, max_length=64, eval_every=None)
MAX_LENGTH = 64


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A tiny Llama session with a RED run, a TARE run and a bias-only RED run on layer 1."""
    folder = tmp_path_factory.mktemp("explore")
    model_folder, csv = save_tiny_llama(folder / "model"), write_csv(folder / "words.csv", tiny_rows(40))
    session = Session(Workbench(ModelRegistry()))
    model.load_model(session, str(model_folder), "causal-lm", "auto", "auto")
    data.load_data(session, str(csv), None, 0.1, 0, MAX_LENGTH)
    workbench = session.workbench
    session.red = workbench.train(MethodSpec("red", variant="full", sites=["ffn"]), OPTIONS).label
    session.tare = workbench.train(MethodSpec("tare", sites=["ffn"], num_editors=3, top_k=2), OPTIONS).label
    bias_spec = MethodSpec("red", variant="bias", sites=["ffn"], layers=[1])
    session.bias = workbench.train(bias_spec, OPTIONS).label
    yield session
    session.close()


def test_strength_zero_generates_the_base_text(session):
    result = Explorer(session.workbench).generate_at(session.red, 0.0, "red cat runs", 12)
    assert result.edited.text == result.base.text and result.strength == 0.0
    base_card, run_card, text = explore.generate(session, session.red, 0.0, "red cat runs", 12)
    assert text == result.base.text and "base" in base_card and "α = 0" in run_card
    card, again = explore.regenerate(session, session.red, 1.0, "red cat runs", 12)
    trained = Explorer(session.workbench).generate_at(session.red, 1.0, "red cat runs", 12, with_base=False)
    assert again == trained.edited.text and trained.base is None and "α = 1" in card


def test_dose_response_has_one_point_per_strength_and_no_drift_at_zero(session):
    figure = explore.dose(session, session.red, MAX_LENGTH)
    loss, kl = figure.data
    assert list(loss.x) == list(DOSE_STRENGTHS) and list(kl.x) == list(DOSE_STRENGTHS)
    at = dict(zip(kl.x, kl.y, strict=True))
    assert at[0.0] == pytest.approx(0.0, abs=1e-6) and at[1.0] > 0 and at[3.0] > at[1.0]
    losses = dict(zip(loss.x, loss.y, strict=True))
    figures = session.workbench.run(session.red).result
    assert losses[0.0] == pytest.approx(figures.metrics_before["loss"], rel=1e-4)  # α = 0 is the base
    assert losses[1.0] == pytest.approx(figures.metrics_after["loss"], rel=1e-4)  # α = 1 is the trained run


class Bar:
    """Stands in for gr.Progress: keeps every (fraction, desc)."""

    def __init__(self):
        self.calls = []

    def __call__(self, fraction, desc=None):
        self.calls.append((fraction, desc))


def test_dose_response_and_layers_fill_the_bar_pass_by_pass(session):
    bar = Bar()  # one validation batch: the base, then each of the 8 strengths
    assert explore.dose(session, session.red, MAX_LENGTH, bar) == explore.dose(session, session.red, MAX_LENGTH)
    assert [fraction for fraction, _ in bar.calls] == pytest.approx([done / 9 for done in range(10)])
    assert bar.calls[0] == (0.0, "the base") and bar.calls[-1] == (1.0, "done")
    assert bar.calls[1][1].startswith("α = -1 (1 of 8) · about ") and bar.calls[1][1].endswith(" left")
    bar = Bar()  # two layers: base, run, then leave out and keep only per layer
    assert explore.layers(session, session.red, MAX_LENGTH, bar) == explore.layers(session, session.red, MAX_LENGTH)
    assert [fraction for fraction, _ in bar.calls] == pytest.approx([done / 6 for done in range(7)])
    assert [desc.split(" · about")[0] for _, desc in bar.calls] == [
        "the base model",
        "the whole run",
        "layer 0 (1 of 2) · leave out",
        "layer 0 (1 of 2) · keep only",
        "layer 1 (2 of 2) · leave out",
        "layer 1 (2 of 2) · keep only",
        "done",
    ]


def test_token_strip_has_one_span_per_token(session):
    strip, text = explore.drift(session, session.red, "red cat runs", "cat cat")
    tokenizer = session.workbench.loaded().tokenizer
    prompt_ids = tokenizer(chat_prompt(tokenizer, "red cat runs"))["input_ids"]
    text_ids = tokenizer("cat cat", add_special_tokens=False)["input_ids"]
    assert strip.count('class="drift-token"') == len(prompt_ids) + len(text_ids) and text == "cat cat"
    drift = Explorer(session.workbench).drift(session.red, "cat cat", "red cat runs")
    assert max(drift.kl) > 0 and f"darkest = {max(drift.kl):.4f}" in strip
    assert "rgba(192, 57, 43, 1.000)" in strip  # the token with the largest KL is the darkest


def test_token_strip_holds_the_generated_tokens_after_the_prompt(session):
    """With nothing generated yet, the strip generates the run's text first: prompt tokens, then the text's."""
    prompt = "blue dog"
    strip, text = explore.drift(session, session.tare, prompt, "", 12)  # the tiny RED run ends at once; TARE talks
    expected = Explorer(session.workbench).generate_at(session.tare, 1.0, prompt, 12, with_base=False).edited.text
    assert text == expected and text.strip()
    tokenizer = session.workbench.loaded().tokenizer
    prompt_ids = tokenizer(chat_prompt(tokenizer, prompt))["input_ids"]
    text_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    spans = re.findall(r'<span class="drift-token" title="[^"]*" style="([^"]*)">(.*?)</span>', strip, re.S)
    assert ["border-bottom" in style for style, _ in spans] == [True] * len(prompt_ids) + [False] * len(text_ids)
    shown = [unescape(token).replace("↵<br>", "\n") for _, token in spans[len(prompt_ids) :]]
    assert shown == [tokenizer.decode([token_id]) for token_id in text_ids]
    assert f"{len(prompt_ids)} prompt tokens (underlined), then {len(text_ids)} tokens of the text" in strip


def test_token_strip_of_a_tare_run_names_the_chosen_editors(session):
    strip, _ = explore.drift(session, session.tare, "", "red cat runs")
    drift = Explorer(session.workbench).drift(session.tare, "red cat runs")
    first = ", ".join(str(editor) for editor in drift.editor_choice[0][0])
    assert f"{drift.routing_sites[0]}: editors {first}" in strip.replace("&#x27;", "'")
    assert strip.count('class="drift-token"') == len(drift.tokens)


def test_layer_chart_has_one_bar_per_layer_per_series(session):
    figure = explore.layers(session, session.red, MAX_LENGTH)
    without, only = figure.data
    assert list(without.x) == ["layer 0", "layer 1"] and list(only.x) == ["layer 0", "layer 1"]
    # with two layers, keeping only layer 0 is leaving layer 1 out, and the other way round
    assert only.y[0] == pytest.approx(without.y[1]) and only.y[1] == pytest.approx(without.y[0])
    figures = session.workbench.run(session.red).result
    assert figure.layout.yaxis.range[0] == 0  # bars start at 0: their heights compare
    colour = common.colours(session.workbench)[session.red]
    assert without.marker.color == only.marker.pattern.fgcolor == only.marker.line.color == colour  # the run's colour
    assert not without.marker.pattern.shape and only.marker.pattern.shape == "/"  # solid and hatched: two legends
    assert only.marker.color == "white" and only.marker.opacity is None
    lines = sorted(shape.y0 for shape in figure.layout.shapes)
    assert lines == pytest.approx(sorted([figures.metrics_before["loss"], figures.metrics_after["loss"]]), rel=1e-4)


def test_layers_refuse_a_tare_run(session):
    with pytest.raises(ValueError, match="works on RED runs"):
        explore.layers(session, session.tare, MAX_LENGTH)


def test_run_b_starts_as_another_red_run_that_combines_with_run_a(files):
    """Run A the latest RED run; run B the most recent other one with the same sites and layers, else empty."""
    session = new_session(files)
    workbench = session.workbench
    full = workbench.train(MethodSpec("red", variant="full", sites=["ffn"]), QUICK).label
    _, first, second = explore.choices(session)
    assert (first.value, second.value) == (full, None)  # one RED run: nothing to pair it with
    bias = workbench.train(MethodSpec("red", variant="bias", sites=["ffn"], layers=[1]), QUICK).label
    _, first, second = explore.choices(session)
    assert (first.value, second.value) == (bias, None)  # layer 1 only: it does not combine with the full run
    scale = workbench.train(MethodSpec("red", variant="scale", sites=["ffn"]), QUICK).label
    workbench.train(MethodSpec("lora"), QUICK)  # not RED: never run B
    _, first, second = explore.choices(session)
    assert (first.value, second.value) == (scale, full)  # the bias run, though newer, has other layers
    assert explore.choices(session, None, full)[2].value == scale  # run A chosen: B pairs with it
    assert explore.choices(session, None, scale, bias)[2].value == bias  # a run B chosen stays chosen
    session.close()


def test_mix_of_a_run_with_itself_is_kept_as_the_same_run(session):
    grouped = session.workbench.train(MethodSpec("red", variant="scale"), OPTIONS, group="ablation A").label
    status, choices, first, second = explore.combine(
        session, "mix", session.red, session.red, 0.5, 0.5, "half and half"
    )
    assert "half and half" in status and choices.value == "half and half" and "half and half" in choices.choices
    assert "half and half" in first.choices and "half and half" in second.choices  # Run A and B list it at once
    assert first.value == second.value == session.red  # A and B keep what was chosen
    assert choices.names[grouped] == first.names[grouped] == f"ablation A › {grouped}"  # groups stay named
    workbench = session.workbench
    mixed, original = (read_red_run(workbench.run(label).record.path) for label in ("half and half", session.red))
    assert set(mixed.vectors) == set(original.vectors)
    for name, vector in original.vectors.items():
        torch.testing.assert_close(mixed.vectors[name], vector)
    assert "half and half" in explore.choices(session)[1].choices  # listed for the other tabs too


def test_negate_is_the_run_at_strength_minus_one(session):
    explore.combine(session, "negate", session.red, None, name="negated")
    negated = read_red_run(session.workbench.run("negated").record.path)
    original = read_red_run(session.workbench.run(session.red).record.path)
    for name, vector in original.vectors.items():
        expected = 2 - vector if name.endswith("red_scale") else -vector
        torch.testing.assert_close(negated.vectors[name], expected)


def test_control_vector_of_a_bias_only_run_holds_its_bias(session):
    path = explore.control_vector(session, session.bias)
    vector = read_control_vector(path)
    run = read_red_run(session.workbench.run(session.bias).record.path)
    (bias,) = run.vectors.values()
    assert list(vector.directions) == [1]
    torch.testing.assert_close(vector.directions[1], bias)
    with pytest.raises(ValueError) as refused:
        explore.control_vector(session, session.red)
    assert str(refused.value).endswith(
        "only adds): export its bias only (layers 1 and up; in the Export tab, tick “bias only, layers ≥ 1”), "
        "or train it bias-only (in the Train tab, RED vectors: “bias only”)"
    )


def test_explore_decodes_as_compare_does_and_says_how(session):
    """At α = 1 Explore's answer is Compare's with its default decoding (repetition penalty 1.1), and both say so."""
    settings = replace(APP_DECODING, max_new_tokens=12)
    compared = session.workbench.compare("blue dog", None, [session.tare], settings).generations[1].text
    base_card, run_card, text = explore.generate(session, session.tare, 1.0, "blue dog", 12)
    assert text == compared
    assert decoding_text(settings) in run_card and decoding_text(settings) in base_card
    assert "repetition penalty 1.1" in decoding_text(settings)
    shown, _, _ = compare.compare(session, "blue dog", None, [session.tare], 12)
    assert f"*Decoding:* {decoding_text(settings)}." in shown


def test_explore_plots_name_their_data_and_warn_when_it_is_not_the_runs(session, tmp_path):
    workbench = session.workbench
    trained_on = shutil.copy(workbench.data.path, tmp_path / "words.csv")  # the session's own copy goes with a new file
    figure = explore.dose(session, session.red, MAX_LENGTH)
    rows = workbench.data.detected.num_validation
    assert f"{session.red} on {rows} validation rows of words.csv" in figure.layout.title.text
    other = write_csv(tmp_path / "other.csv", tiny_rows(30, seed=5))
    data.load_data(session, str(other), None, 0.1, 0, MAX_LENGTH)
    try:
        notice = explore.dose(session, session.red, MAX_LENGTH)
        assert "validation rows of other.csv" in notice.outputs.layout.title.text
        assert notice.warning.startswith(
            f"{session.red} was trained on words.csv, but the data loaded now is other.csv"
        )
        assert "Load words.csv in the Data tab" in explore.layers(session, session.red, MAX_LENGTH).warning
    finally:
        data.load_data(session, str(trained_on), None, 0.1, 0, MAX_LENGTH)


def test_the_export_tab_makes_a_control_vector_of_any_red_run(session):
    """A full run is refused by its label (no server path, no command-line flag); bias only, layers ≥ 1 passes."""
    with pytest.raises(ValueError, match=r"^RED full \(ffn\) has a scale part") as refused:
        export.export_control_vector(session, session.red, False)
    assert str(refused.value).endswith(  # each way out says where to take it
        ": export its bias only (layers 1 and up; tick “bias only, layers ≥ 1” here), "
        "or train it bias-only (in the Train tab, RED vectors: “bias only”)"
    )
    assert session.workbench.owner not in str(refused.value) and "--" not in str(refused.value)
    path, status = export.export_control_vector(session, session.red, True)
    assert list(read_control_vector(path).directions) == [1]
    assert status.startswith("**Control vector of RED full (ffn)** ready: layers 1; left out: the scale vectors of")
    assert "the bias of layer 0 (llama.cpp never steers layer 0)" in status


def test_a_bias_only_run_trained_on_chosen_layers_in_the_train_tab_exports_whole(session):
    outputs = list(train.train(session, ["RED"], "bias", ["ffn"], red_layers="last:1", **TRAIN))
    label = session.workbench.run_labels()[-1]  # the newest run
    assert label.startswith("RED bias (ffn)") and session.workbench.run(label).spec.layers == [1]
    assert outputs[-1][2]["method"].tolist() == [label]
    path, status = export.export_control_vector(session, label, False)
    assert list(read_control_vector(path).directions) == [1] and "left out" not in status
    with pytest.raises(ValueError, match="layer 7 does not exist: the model has 2 layers"):
        list(train.train(session, ["RED"], "bias", ["ffn"], red_layers="1,7", **TRAIN))
