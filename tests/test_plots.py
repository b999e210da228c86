"""Plot functions are pure: their traces hold exactly the numbers they were given (and the analysis computed)."""

from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import pytest
from test_analysis import edited

from red_explorer.app.colours import METHOD_SHADES, RED
from red_explorer.app.plots import (
    MESSAGE_LINE_CHARACTERS,
    TITLE_ROOM,
    ablation_figure,
    distribution_figure,
    edit_heatmap_figure,
    editor_magnitude_figure,
    empty_figure,
    layer_magnitude_figure,
    log_ticks,
    loss_figure,
    parameter_figure,
    routing_figure,
    step_tick,
    token_length_figure,
    usage_figure,
)
from red_explorer.engine.analysis import (
    EditorMagnitudes,
    RoutingTable,
    edit_matrix,
    edit_values,
    layer_magnitudes,
    site_edits,
)


@pytest.fixture(scope="module")
def edits():
    return site_edits(edited()[1])


def test_loss_figure_has_train_and_validation_traces():
    history = [{"step": 0, "loss": 3.0}, {"step": 2, "loss": 2.5}]
    figure = loss_figure({"RED": ([3.1, 2.9, 2.4], history), "LoRA": ([3.0, 2.8], [])})
    assert isinstance(figure, go.Figure)
    names = [trace.name for trace in figure.data]
    assert names == ["RED · train", "RED · validation", "LoRA · train"]
    assert list(figure.data[0].x) == [1, 2, 3] and list(figure.data[0].y) == [3.1, 2.9, 2.4]
    assert list(figure.data[1].x) == [0, 2] and list(figure.data[1].y) == [3.0, 2.5]
    assert figure.data[1].line.dash == "dash" and figure.data[0].line.color == figure.data[1].line.color
    assert [trace.showlegend is not False for trace in figure.data] == [True, False, True]  # one entry per run
    many = loss_figure({f"run {index}": ([3.0, 2.0], history) for index in range(12)})
    areas = {item.layout.height - item.layout.margin.t - item.layout.margin.b for item in (figure, many)}
    assert areas == {260}  # twelve runs in the legend leave the plot its height


def test_layer_bars_equal_the_analysis(edits):
    magnitudes = layer_magnitudes(edits)
    figure = layer_magnitude_figure(magnitudes)
    bars = {(trace.name, trace.yaxis): trace for trace in figure.data}
    ffn = magnitudes[0]
    assert list(bars[("FFN output", "y")].y) == pytest.approx(ffn.scale)
    assert list(bars[("FFN output", "y2")].y) == pytest.approx(ffn.bias)
    assert list(bars[("attention output", "y2")].x) == magnitudes[1].layers
    assert len(figure.data) == 4 and figure.layout.barmode == "group"


def test_the_layer_plot_reads_clearly(edits):
    magnitudes = layer_magnitudes(edits)
    figure = layer_magnitude_figure(magnitudes, "a run: per layer")
    layout = figure.layout
    assert layout.yaxis.title.text == "mean |scale − 1|<br>(% of h)" and layout.yaxis.tickformat == "~%"
    assert layout.yaxis2.title.text == "mean |bias|<br>(units of h)" and layout.annotations == ()  # no titles over bars
    assert layout.xaxis2.title.text == "layer (0 = nearest the input)"
    assert (layout.xaxis.tickformat, layout.xaxis.dtick, layout.xaxis.showticklabels) == ("d", 1, True)
    assert [trace.marker.color for trace in figure.data[:2]] == [RED, METHOD_SHADES["red"][1]]  # RED's reds
    assert [trace.showlegend for trace in figure.data] == [True, True, False, False]
    assert layout.legend.y < 0 and layout.legend.yanchor == "top"  # under the axis title, over no bar
    assert "%{y:.2%}" in figure.data[0].hovertemplate and "layer %{x}" in figure.data[0].hovertemplate
    one_kind = layer_magnitude_figure(magnitudes[:1])
    assert [trace.showlegend for trace in one_kind.data] == [False, False]  # one site kind needs no legend
    many = [replace(magnitudes[0], layers=list(range(30)), scale=[0.1] * 30, bias=[0.1] * 30)]
    assert layer_magnitude_figure(many).layout.xaxis.dtick == 2


def test_titles_sit_under_the_plot_toolbar(edits):
    """The hover toolbar (plotly's modebar) shows along the figure's top edge: the title sits below it."""
    figures = [layer_magnitude_figure(layer_magnitudes(edits)), loss_figure({"run": ([3.0, 2.0], [])})]
    figures.append(edit_heatmap_figure(*edit_matrix(edits, "bias"), "a long title that runs to the right edge"))
    for figure in figures:
        title = figure.layout.title
        assert (title.yref, title.y, title.yanchor, title.pad.t) == ("container", 1.0, "top", TITLE_ROOM)
        assert figure.layout.margin.t >= 56 + TITLE_ROOM


def test_heatmap_holds_the_matrix_centred_on_zero(edits):
    labels, matrix = edit_matrix(edits, "bias")
    figure = edit_heatmap_figure(labels, matrix, "bias")
    heatmap = figure.data[0]
    assert np.array_equal(np.asarray(heatmap.z), matrix)
    assert list(heatmap.y) == labels
    assert heatmap.zmin == -heatmap.zmax == pytest.approx(-np.abs(matrix).max())


def test_distribution_has_one_histogram_per_vector(edits):
    values = edit_values(edits)
    figure = distribution_figure(values)
    assert [trace.name for trace in figure.data] == ["scale − 1", "bias"]
    assert np.array_equal(np.asarray(figure.data[1].x), values["bias"])


def test_parameter_chart_is_log_scale_with_shares():
    counts = {"RED (FFN)": 34_560, "LoRA (r=8)": 460_800, "Full fine-tuning": 134_515_008}
    figure = parameter_figure(counts, total=134_515_008)
    bars = figure.data[0]
    assert list(bars.x) == list(counts.values()) and list(bars.y) == list(counts)
    assert figure.layout.xaxis.type == "log"
    assert bars.text[0] == "34.6K (0.0257%)" and bars.text[2].endswith("(100%)")
    assert list(figure.layout.xaxis.ticktext) == ["100k", "1M", "10M", "100M"]  # decades: the 1-2-5 ticks crowd
    assert bars.marker.color[0] != bars.marker.color[1]  # RED and LoRA coloured apart


def test_ablation_scatter_puts_metric_against_parameters():
    rows = [
        {
            "method": "red",
            "label": "RED full (ffn)",
            "trainable_parameters": 128,
            "before": 4.6,
            "after": 4.4,
            "metric": "val_loss",
        },
        {
            "method": "red",
            "label": "RED bias (ffn)",
            "trainable_parameters": 64,
            "before": 4.6,
            "after": 4.5,
            "metric": "val_loss",
        },
        {
            "method": "lora",
            "label": "LoRA r=8",
            "trainable_parameters": 1792,
            "before": 4.6,
            "after": 4.3,
            "metric": "val_loss",
        },
    ]
    figure = ablation_figure(rows)
    red, lora = figure.data
    assert (
        list(red.x) == [128, 64]
        and list(red.y) == [4.4, 4.5]
        and list(red.text) == ["RED full (ffn)", "RED bias (ffn)"]
    )
    assert list(lora.x) == [1792] and lora.name == "LORA"
    assert figure.layout.xaxis.type == "log" and figure.layout.yaxis.title.text == "val loss (after)"
    assert figure.layout.shapes[0].y0 == pytest.approx(4.6)  # the "before training" line
    assert list(figure.layout.xaxis.ticktext) == ["50", "100", "200", "500", "1k", "2k"]  # no bare "2" or "5"


def test_token_lengths_mark_the_cut():
    figure = token_length_figure({"train": [10, 20, 30], "validation": [15]}, max_length=25)
    assert [trace.name for trace in figure.data] == ["train", "validation"]
    assert list(figure.data[0].x) == [10, 20, 30]
    assert figure.layout.shapes[0].x0 == 25
    label = figure.layout.annotations[0]
    assert label.text == "max length 25" and (label.yref, label.y, label.yanchor) == ("paper", 1.0, "bottom")
    assert figure.layout.legend.y > 1.0  # the legend sits above the label, neither over the bars


def routing():
    return RoutingTable(
        tokens=["the", "cat"],
        site_labels=["L0 ffn", "L1 ffn"],
        top_editor=np.array([[0, 2], [1, 1]]),
        top_weight=np.array([[0.6, 0.7], [0.5, 0.9]]),
        usage=np.array([[0.5, 0.5, 1.0], [0.0, 1.0, 1.0]]),
    )


def test_routing_heatmap_shows_each_tokens_top_editor():
    figure = routing_figure(routing())
    heatmap = figure.data[0]
    assert np.array_equal(np.asarray(heatmap.z), [[0, 2], [1, 1]])
    assert list(heatmap.y) == ["L0 ffn", "L1 ffn"] and list(figure.layout.xaxis.ticktext) == ["the", "cat"]
    assert (heatmap.zmin, heatmap.zmax) == (-0.5, 2.5)


def test_usage_bars_average_over_sites():
    figure = usage_figure(routing())
    assert list(figure.data[0].x) == ["editor 0", "editor 1", "editor 2"]
    assert list(figure.data[0].y) == pytest.approx([0.25, 0.75, 1.0])


def test_editor_magnitudes_two_heatmaps():
    table = EditorMagnitudes(["L0 ffn"], np.array([[0.1, 0.2]]), np.array([[0.3, 0.4]]))
    figure = editor_magnitude_figure(table)
    assert [list(trace.z[0]) for trace in figure.data] == [[0.1, 0.2], [0.3, 0.4]]
    assert list(figure.data[0].x) == ["e0", "e1"]


def test_a_long_message_wraps_into_lines_that_fit_a_half_width_plot():
    hint = "Press “Measure per layer” to see which layers a RED run needs (a few validation passes per layer)"
    lines = empty_figure(hint).layout.annotations[0].text.split("<br>")
    assert len(lines) == 2 and all(len(line) <= MESSAGE_LINE_CHARACTERS for line in lines)
    assert " ".join(lines) == hint
    assert empty_figure(hint).layout.annotations[0].xref == "paper"  # centred in the plot, whatever the axes


def test_empty_figure_says_why():
    figure = empty_figure("nothing yet")
    assert figure.layout.annotations[0].text == "nothing yet" and not figure.data


def test_token_length_bins_cover_the_data_and_the_cut():
    figure = token_length_figure({"train": [54, 55, 55], "validation": [54]}, max_length=128)
    bins = figure.data[0].xbins
    assert bins.start == 53.5 and bins.size == 3 and bins.end >= 128
    assert figure.data[1].xbins == bins  # both splits share the bins


@pytest.mark.parametrize(("last", "tick"), [(0, 1), (3, 1), (10, 1), (11, 2), (30, 5), (60, 10), (1000, 100)])
def test_step_ticks_are_whole_steps(last, tick):
    assert step_tick(last) == tick


def test_a_short_loss_curve_has_integer_step_ticks():
    figure = loss_figure({"RED": ([3.0, 2.9, 2.8], [])})
    assert (figure.layout.xaxis.tick0, figure.layout.xaxis.dtick) == (0, 1)


def test_log_ticks_read_as_short_numbers():
    assert log_ticks(8_000, 60_000) == ([10_000, 20_000, 50_000], ["10k", "20k", "50k"])
    assert log_ticks(3_000, 2e8)[1] == ["10k", "100k", "1M", "10M", "100M"]


def test_layer_panels_follow_the_learned_vectors_and_shared_tops(edits):
    magnitudes = layer_magnitudes(edits)
    figure = layer_magnitude_figure(magnitudes, vectors=("scale",), y_max={"scale": 2.0})
    assert {trace.yaxis for trace in figure.data} == {"y"} and figure.layout.yaxis.title.text.startswith("mean |scale")
    assert figure.layout.yaxis.range == (0, 2.1)


def test_two_heatmaps_with_one_limit_share_their_colours(edits):
    labels, matrix = edit_matrix(edits, "bias")
    figure = edit_heatmap_figure(labels, matrix, "bias", limit=5.0)
    assert (figure.data[0].zmin, figure.data[0].zmax) == (-5.0, 5.0)
