"""The Ablations tab's learning-rate sweep: the handler over a tiny model, its chart, the rates a user types."""

import math

import pytest
from app_helpers import new_session

from red_explorer.app import sweeping
from red_explorer.app.sweep_plot import best_points, sweep_figure
from red_explorer.app.sweeping import METHOD_CHOICES, parse_rates, rates_preview
from red_explorer.app.ui.handlers import ablate, sweep
from red_explorer.app.ui.handlers.common import Visible
from red_explorer.choice.cost import CostConfig
from red_explorer.choice.forgetting import general_paragraphs
from red_explorer.choice.sweep import read_results

RATES = "1e-3, 5e-2"  # two rates: one too small to move in 2 steps, one that does
LOOP = dict(max_steps=2, batch_size=8, max_length=64, epochs=1, seed=0)


class Recorder:
    """Stands in for gr.Progress: keeps every description."""

    def __init__(self, on_call=None):
        self.descriptions, self.on_call = [], on_call

    def __call__(self, fraction, desc=None, **kwargs):
        self.descriptions.append(desc)
        if self.on_call:
            self.on_call(desc)


def quick_config(general_text):
    """The app's sweep settings, with a short general text and no generation timing (a fast test)."""

    def config(*args):
        chosen = sweeping.sweep_config(*args)
        chosen.general_text, chosen.general_max_length = str(general_text), 24
        chosen.cost = CostConfig(new_tokens=0)  # the library's tests time generation
        return chosen

    return config


@pytest.fixture(scope="module")
def swept(files, tmp_path_factory):
    """A RED + LoRA sweep at two rates each, run through the handler."""
    general = tmp_path_factory.mktemp("general") / "general.txt"
    general.write_text("\n\n".join(general_paragraphs()[:4]))
    session, recorder = new_session(files), Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep, "sweep_config", quick_config(general))
        outputs = list(sweep.sweep(session, ["red", "lora"], RATES, **LOOP, forgetting=True, progress=recorder))
    session.outputs, session.descriptions = outputs, recorder.descriptions
    yield session
    session.close()


def test_the_sweep_marks_the_lowest_validation_loss_of_each_method(swept):
    status, chart, card, figure, files = swept.outputs[-1]
    assert "<b>Done:</b> 4/4 points" in status and "kept as runs under “sweep " in status
    results = read_results(next(path for path in files if path.endswith("results.json")))
    points = results["points"]
    assert [(point["method"], point["learning_rate"]) for point in points] == [
        ("red", 1e-3),
        ("red", 5e-2),
        ("lora", 1e-3),
        ("lora", 5e-2),
    ]
    for method, best in zip(["red", "lora"], results["best"], strict=True):
        own = [point for point in points if point["method"] == method]
        lowest = min(own, key=lambda point: point["val_loss_after"])
        assert best["learning_rate"] == lowest["learning_rate"] and best["after"] == lowest["val_loss_after"]
    assert list(card["method"]) == ["RED full (ffn)", "LoRA r=8"]
    assert list(card["best lr"]) == [{1e-3: "1e-3", 5e-2: "5e-2"}[best["learning_rate"]] for best in results["best"]]
    assert list(card["metric"]) == [f"val_loss {best['after']:.4f}" for best in results["best"]]
    assert list(card["trainable params"]) == ["128", "1.79K"] and all(card["forgetting"] != "—")
    assert "peak memory" not in card.columns  # on a CPU, as in the Train tab: not a per-run figure there
    assert list(chart.layout.xaxis.ticktext) == ["1e-3", "5e-2"]  # the rates as typed, each told apart
    stars = [trace for trace in chart.data if trace.marker.symbol == "star"]
    assert [(trace.x[0], trace.y[0]) for trace in stars] == [(b["learning_rate"], b["after"]) for b in results["best"]]
    assert chart.layout.xaxis.type == "log" and chart.layout.title.text.endswith(" on words.csv")
    assert [trace.name for trace in figure.data] == ["RED full (ffn)", "LoRA r=8"]
    assert any(path.endswith("results.md") and "# Method card" in open(path).read() for path in files)


def test_every_point_is_a_run_grouped_under_the_sweep(swept):
    results = read_results(next(path for path in swept.outputs[-1][4] if path.endswith("results.json")))
    runs = swept.workbench.runs
    labels = [point["run_label"] for point in results["points"]]
    assert labels == [
        "RED full (ffn) · lr 1e-3",
        "RED full (ffn) · lr 5e-2",
        "LoRA r=8 · lr 1e-3",
        "LoRA r=8 · lr 5e-2",
    ]
    groups = {runs[label].group for label in labels}
    assert len(groups) == 1 and groups.pop().startswith("sweep ")
    for point in results["points"]:  # the kept run is the point: same rate, same loss after
        run = runs[point["run_label"]]
        assert run.record.train_config["learning_rate"] == point["learning_rate"]
        assert run.record.metrics_after["loss"] == pytest.approx(point["val_loss_after"])


def test_progress_names_each_point_and_its_place(swept):
    assert "RED full (ffn) lr 1e-3 1/4" in swept.descriptions
    assert "LoRA r=8 lr 5e-2 4/4, step 2/2: validating, then measuring forgetting …" in swept.descriptions


def test_a_bad_rate_list_is_a_message_and_no_run(files):
    session = new_session(files)
    before = len(session.workbench.all_runs())
    with pytest.raises(ValueError, match="'3e-x' is not a positive number. Type 'auto' or comma-separated"):
        list(sweep.sweep(session, ["red"], "1e-3, 3e-x", **LOOP))
    with pytest.raises(ValueError, match="tick at least one method"):
        list(sweep.sweep(session, [], "auto", **LOOP))
    assert len(session.workbench.all_runs()) == before
    status, chart, card, _, files_out = sweep.restore_after_failure(session)
    assert "Sweep not run to the end" in status and len(card) == 0 and files_out is None


def test_stop_after_the_first_point_keeps_that_point(files):
    session = new_session(files)
    stop_once_running = Recorder(lambda desc: session.workbench.stop() if desc.endswith("step 1/2") else None)
    outputs = list(sweep.sweep(session, ["red", "lora"], RATES, **LOOP, forgetting=False, progress=stop_once_running))
    status, chart, card, _, files_out = outputs[-1]
    assert "<b>Done:</b> 1/4 points (stopped)" in status
    results = read_results(files_out[0])
    assert results["stopped"] and len(results["points"]) == 1
    point = results["points"][0]
    assert point["stopped_reason"] == "completed" and point["steps"] == 2  # the point under way ran to its end
    assert session.workbench.runs[point["run_label"]].record.stopped_reason == "completed"
    assert list(card["method"]) == ["RED full (ffn)"] and list(card["best lr"]) == ["1e-3"]
    session.close()


def test_best_points_follow_the_metric_and_skip_stopped_or_diverged_points():
    def point(index, lr, after, reason="completed"):
        return dict(spec_index=index, method="red", label=f"m{index}", learning_rate=lr, after=after,
                    metric="val_loss", stopped_reason=reason)  # fmt: skip

    points = [point(0, 1e-3, 2.0), point(0, 1e-2, 1.5), point(0, 1e-1, math.nan), point(1, 1e-3, 1.0, "stopped")]
    assert best_points(points, higher_is_better=False) == {0: points[1]}
    assert best_points(points[:2], higher_is_better=True) == {0: points[0]}
    figure = sweep_figure(points)
    assert [trace.name for trace in figure.data] == ["m0", "best m0: lr 1e-2", "m1"]
    assert list(figure.data[0].y) == [2.0, 1.5, None]  # the diverged point is a gap


def test_rates_are_auto_or_positive_numbers_and_the_preview_lists_them():
    assert parse_rates(" Auto ") == "auto" and parse_rates("1e-3, 3e-3,") == [1e-3, 3e-3]
    for bad in ("0", "-1e-3", "nan", "1e-3; 1e-2", ","):
        with pytest.raises(ValueError, match="Type 'auto'"):
            parse_rates(bad)
    shown = rates_preview(["red", "lora"], "auto")
    assert "**10 runs**" in shown and "**RED**: 3e-3, 1e-2, 3e-2, 9e-2, 0.3" in shown
    assert "**LoRA**: 9e-4, 3e-3, 9e-3, 2.7e-2, 9e-2" in shown
    assert "whole model on disk" in rates_preview(["full"], "1e-5")
    assert rates_preview(["red"], "abc").startswith("✕")
    assert [name for _, name in METHOD_CHOICES][:3] == ["red", "tare", "lora"] and ("LoRA", "lora") in METHOD_CHOICES


def test_the_mode_shows_one_panel_set():
    assert ablate.show_mode("paper ablation") == (Visible(True),) * 3 + (Visible(False),) * 3
    assert ablate.show_mode("learning-rate sweep") == (Visible(False),) * 3 + (Visible(True),) * 3


def test_a_best_rate_at_the_edge_of_its_grid_gets_a_hint_to_go_beyond_and_ticks_tell_rates_apart():
    def point(index, lr, after):
        return dict(spec_index=index, method="red", label=f"m{index}", learning_rate=lr, after=after,
                    metric="val_loss", stopped_reason="completed")  # fmt: skip

    points = [point(0, 3e-3, 2.0), point(0, 3e-2, 1.5), point(1, 3e-3, 1.0), point(1, 3e-2, 1.2)]
    points += [point(2, 1e-3, 2.0), point(2, 1e-2, 1.0), point(2, 1e-1, 3.0)]
    results = {"points": points, "best": [points[1], points[2], points[5]]}
    assert sweeping.edge_hints(results) == [
        "m0: the best rate 3e-2 is the highest tried, so the best may lie beyond it: try higher rates",
        "m1: the best rate 3e-3 is the lowest tried, so the best may lie beyond it: try lower rates",
    ]
    assert list(sweep_figure(points).layout.xaxis.ticktext) == ["1e-3", "3e-3", "1e-2", "3e-2", "0.1"]
    best = [dict(points[1], trainable_parameters=128, peak_memory_bytes=2**20, run_label="r")]
    assert list(sweep.card_table(best, "cuda:0")["peak memory"]) == ["1.0 MB"]
    assert "peak memory" not in sweep.card_table(best, "cpu").columns
