"""One colour per method in every plot: RED runs in red (a shade of it per further run), LoRA in blue, and so on."""

import re

import pandas as pd
from app_helpers import TRAIN, new_session

from red_explorer.app.colours import (
    BASE_COLOUR,
    METHOD_COLOURS,
    METHOD_SHADES,
    OTHER_SHADES,
    RED,
    TEXT_CONTRAST,
    contrast_on_white,
    method_colour,
    method_shades,
    run_colours,
    text_colour,
)
from red_explorer.app.method_card_plot import method_card_figure
from red_explorer.app.plots import ablation_figure, loss_figure, parameter_figure
from red_explorer.app.sweep_plot import sweep_figure
from red_explorer.app.ui.handlers import common, train

BLUE = METHOD_COLOURS["lora"]


def row(index: int, method: str, label: str, learning_rate: float = 1e-2, after: float = 2.0) -> dict:
    """A sweep point or a method-card row."""
    return {
        "spec_index": index,
        "method": method,
        "label": label,
        "learning_rate": learning_rate,
        "metric": "val_loss",
        "before": 3.0,
        "after": after,
        "trainable_parameters": 100 * (index + 1),
        "seconds_per_step": 0.01,
        "stopped_reason": "completed",
    }


def test_red_is_red_and_each_further_run_of_a_method_a_shade_of_its_hue():
    assert RED == "#c0392b" and method_colour("red") == method_colour("RED") == RED
    assert method_colour("lora") == BLUE == "#2471a3"
    runs = [("a", "lora"), ("b", "red"), ("c", "red"), ("d", "lora"), ("e", "tare")]
    assert run_colours(runs) == {
        "a": BLUE,
        "b": RED,
        "c": METHOD_SHADES["red"][1],
        "d": METHOD_SHADES["lora"][1],
        "e": METHOD_COLOURS["tare"],
    }
    assert method_shades(["red"] * 5)[4] == RED  # the shades come round again
    assert len({shade for shades in METHOD_SHADES.values() for shade in shades}) == 4 * len(METHOD_SHADES)


def test_a_red_run_trained_after_a_lora_run_is_drawn_in_red(files):
    session = new_session(files)
    try:
        list(train.train(session, ["LoRA"], **TRAIN))
        shown = session.workbench.run_labels()
        *_, (_, figure, table) = list(train.train(session, ["RED"], "full", ["ffn"], shown=shown, **TRAIN))
        lines = {trace.name: trace.line.color for trace in figure.data}
        assert lines["RED full (ffn) · train"] == lines["RED full (ffn) · validation"] == RED
        assert lines["LoRA r=8 · train"] == BLUE
        assert table.attrs[common.ROW_COLOURS] == [BLUE, RED]  # the summary's rows: the same colours
        *_, (_, again, _) = list(train.train(session, ["RED"], "full", ["ffn"], **TRAIN))
        second = {trace.name: trace.line.color for trace in again.data}
        assert second["RED full (ffn) #2 · train"] == METHOD_SHADES["red"][1]  # a second RED run: a darker red
        assert common.colours(session.workbench)["RED full (ffn)"] == RED
    finally:
        session.close()


def test_every_plot_draws_red_in_red():
    assert loss_figure({"run": ([3.0, 2.0], [])}, colours={"run": RED}).data[0].line.color == RED
    points = [row(0, "lora", "LoRA r=8"), row(1, "red", "RED full (ffn)"), row(2, "red", "RED scale (ffn)")]
    sweep = {trace.name: trace.line.color for trace in sweep_figure(points).data if trace.mode == "lines+markers"}
    assert sweep == {"LoRA r=8": BLUE, "RED full (ffn)": RED, "RED scale (ffn)": METHOD_SHADES["red"][1]}
    card = method_card_figure(points)
    assert [trace.marker.color for trace in card.data] == [BLUE, RED, METHOD_SHADES["red"][1]]
    ablation = ablation_figure(points)
    assert {trace.name: trace.marker.color for trace in ablation.data} == {"LORA": BLUE, "RED": RED}
    bars = parameter_figure({"RED (FFN)": 128, "LoRA (r=8)": 1792, "Full fine-tuning": 9000}, 9000)
    assert list(bars.data[0].marker.color) == [RED, BLUE, METHOD_COLOURS["full"]]


def test_every_run_colour_written_as_table_text_reads_on_white():
    every = [colour for shades in (*METHOD_SHADES.values(), OTHER_SHADES) for colour in shades] + [BASE_COLOUR]
    frame = pd.DataFrame({"method": [f"run {index}" for index in range(len(every))]})
    frame.attrs[common.ROW_COLOURS] = every
    html = common.coloured(frame).to_html()
    written = set(re.findall(r"color: (#[0-9a-f]{6});", html))
    assert written == {text_colour(colour) for colour in every} and len(written) == len(set(every))
    assert min(contrast_on_white(colour) for colour in written) >= TEXT_CONTRAST >= 3
    assert text_colour(RED) == RED and text_colour("#85c1e9") != "#85c1e9"  # a dark colour stays, a light one darkens
    assert round(contrast_on_white("#000000"), 1) == 21.0 and contrast_on_white("#ffffff") == 1.0
