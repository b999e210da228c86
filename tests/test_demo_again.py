"""A demo clicked again: its new runs ("… #2") are picked in the Train tab and drawn on top, in their colours."""

from dataclasses import replace

import pytest
from app_helpers import save_tiny_llama

from red_explorer.app.colours import METHOD_SHADES
from red_explorer.app.demo_presets import PRESETS
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.options import TrainOptions
from red_explorer.app.ui.handlers import model, train
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench

FIRST = ["RED full (ffn)", "LoRA r=8"]
AGAIN = ["RED full (ffn) #2", "LoRA r=8 #2"]


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    """The style demo on a tiny model, with the Train tab opened after each click: (session, picks, figures)."""
    tiny = str(save_tiny_llama(tmp_path_factory.mktemp("again") / "model"))
    preset = replace(PRESETS["style"], model=tiny, options=TrainOptions(max_steps=2, batch_size=2, max_length=64))
    session, picks, figures, listed, picked = Session(Workbench(ModelRegistry())), [], [], None, []
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PRESETS, "style", preset)
        for _ in range(2):
            *_, outputs = model.run_demo(session, "style")
            figures.append(outputs[1])
            choices, listed = train.shown_choices(session, picked, listed)  # the Train tab opens
            picked = choices.value
            picks.append(picked)
            figures.append(train.show(session, picked)[0])
    yield session, picks, figures
    session.close()


def test_the_second_click_keeps_new_runs_and_the_train_tab_picks_them(twice):
    session, picks, _ = twice
    assert session.workbench.run_labels() == FIRST + AGAIN
    assert picks == [FIRST, FIRST + AGAIN]


def test_the_new_runs_curves_show_over_the_same_curves_of_the_first_runs(twice):
    session, _, (_, _, demo_figure, train_figure) = twice
    assert [trace.name for trace in demo_figure.data if trace.name.endswith("train")] == [
        f"{label} · train" for label in AGAIN
    ]  # the demo's own plot: its new runs
    names = [trace.name for trace in train_figure.data if "· train" in trace.name]
    assert names == [
        "RED full (ffn) · train",
        "LoRA r=8 · train",
        "RED full (ffn) #2 · train (same curves as RED full (ffn))",  # same settings and seed: drawn over it
        "LoRA r=8 #2 · train (same curves as LoRA r=8)",
    ]
    first, again = train_figure.data[0], train_figure.data[4]
    assert list(first.y) == list(again.y) and len(again.y) == 2  # the curve is there, drawn after (on top)
    colours = [trace.line.color for trace in train_figure.data if "· train" in trace.name]
    assert colours == [
        METHOD_SHADES["red"][0],
        METHOD_SHADES["lora"][0],
        METHOD_SHADES["red"][1],
        METHOD_SHADES["lora"][1],
    ]
