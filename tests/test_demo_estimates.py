"""How long a demo takes: its steps and the bench's measured seconds before a click, the time left while it runs."""

import json
import time
from dataclasses import replace
from pathlib import Path

from app_helpers import save_tiny_llama

from red_explorer.app.demo_presets import PRESETS
from red_explorer.app.lesson_text import STEPS
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.options import TrainOptions
from red_explorer.app.ui.handlers import common, model
from red_explorer.app.ui.handlers.counting import TimeLeft
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench

MEASURED = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu-demo-presets.json"


def test_each_preset_says_its_steps_and_the_seconds_the_bench_measured():
    measured = json.loads(MEASURED.read_text())["presets"]
    assert {key: preset.measured_seconds for key, preset in PRESETS.items()} == {
        key: round(record["seconds"]) for key, record in measured.items()
    }
    assert [preset.estimate() for preset in PRESETS.values()] == [
        "2 methods × 9 steps; 43 s on an idle 2-core CPU",
        "14 steps; 36 s on an idle 2-core CPU",
        "30 steps; 7 s on an idle 2-core CPU",
    ]
    assert model.demo_estimates().startswith("**Teach it a style**: 2 methods × 9 steps; 43 s on an idle 2-core CPU · ")


def test_the_lesson_gives_the_style_demos_steps_and_measured_time_not_a_false_minute():
    style, text = PRESETS["style"], STEPS[1].text
    assert "minute" not in text.split("Teach it a style")[1].split("minutes on a busy")[0]
    assert f"{style.options.max_steps} steps each" in text
    assert f"{style.measured_seconds:.0f} s on an idle 2-core CPU" in text and "the time left" in text


def test_the_time_left_follows_the_pace_after_the_set_up():
    now = [0.0]
    left = TimeLeft(after=0.1, clock=lambda: now[0])
    left.report(0.05)  # loading: no pace
    now[0] = 30.0
    left.report(0.1)
    assert left.text() is None
    left.report(0.2)  # the first step: the pace starts here
    assert left.text() is None
    now[0] = 40.0
    left.report(0.3)  # 0.1 of the bar in 10 s: 0.7 left is 70 s
    assert left.text() == "about 1 min left"
    now[0] = 45.0
    left.report(0.8)  # 0.6 in 15 s: 0.2 left is 5 s
    assert left.text() == "about 5 s left"
    now[0] = 48.0
    assert left.text() == "about 2 s left"  # the clock runs on between reports


def test_the_demo_says_its_estimate_at_once_and_the_time_left_while_it_trains(tmp_path, monkeypatch):
    tiny = str(save_tiny_llama(tmp_path / "model"))
    options = TrainOptions(max_steps=3, batch_size=2, max_length=64, eval_every=None)
    monkeypatch.setitem(PRESETS, "style", replace(PRESETS["style"], model=tiny, options=options))
    monkeypatch.setattr(common, "POLL_SECONDS", 0.05)
    session, shown = Session(Workbench(ModelRegistry())), []
    real_train = session.workbench.train

    def unhurried_train(spec, options, callback=None, group=None):
        """The real training, with each step reported 0.2 s late: the page polls during each step."""
        return real_train(spec, options, lambda event: (callback(event), time.sleep(0.2)), group)

    monkeypatch.setattr(session.workbench, "train", unhurried_train)
    try:
        list(model.run_demo(session, "style", lambda fraction, desc=None: shown.append(desc)))
    finally:
        session.close()
    estimate = (
        "Teach it a style: starting (2 methods × 3 steps; 43 s on an idle 2-core CPU; the bar shows the time left"
    )
    assert shown[0].startswith(estimate)
    training = [desc for desc in shown if desc.startswith("training ")]
    assert training and " left" not in training[0]  # one step gives no pace yet
    assert any(desc.startswith("training LoRA r=8: step") and desc.endswith(" s left") for desc in training)
    assert shown[-1].startswith("done in ") and "left" not in shown[-1]
