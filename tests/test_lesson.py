"""The guided lesson's handlers: Next / Back / End keep the step per owner, a page load reopens it, and every step
names a tab and a control the app really has."""

from __future__ import annotations

import pytest

from red_explorer.app.lesson_progress import LESSON_FILE, recall_step
from red_explorer.app.lesson_text import STEPS
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.ui.handlers import lesson
from red_explorer.app.ui.handlers.common import Visible
from red_explorer.app.ui.handlers.navigation import UNCHANGED
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.runs.store import RunStore


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RED_EXPLORER_HOME", str(tmp_path))
    return tmp_path


def browser_session(owner: str) -> Session:
    session = Session(Workbench(ModelRegistry(), store=RunStore(), owner=owner))
    session.adopt_owner(owner)
    return session


def test_next_back_and_end_move_through_the_steps_and_a_reload_reopens_the_step(home):
    owner = "a" * 32
    session = browser_session(owner)
    assert lesson.restore(owner) == (UNCHANGED,) * 5  # never started: the page stays as it is
    start, panel, heading, text, target = lesson.start(session)
    assert (start, panel) == (Visible(False), Visible(True))
    assert heading == "### Lesson · step 1 of 6 · What RED is" and target == "What is RED?|about-figure"
    for _ in range(len(STEPS) + 3):  # past the end: the last step stays
        *_, heading, text, target = lesson.next_step(session)
    assert heading.startswith("### Lesson · step 6 of 6") and "End lesson" in text and target.startswith("Explore|")
    *_, heading, _, target = lesson.previous_step(session)
    assert heading == "### Lesson · step 5 of 6 · Side by side with LoRA" and target == "Compare|compare-cards"
    assert lesson.restore(owner) == lesson.view(4)  # a reload: the same step, read with the browser's key
    assert lesson.restore("b" * 32) == (UNCHANGED,) * 5  # another browser is not in the lesson
    assert lesson.end(session) == lesson.OUTSIDE and lesson.restore(owner) == (UNCHANGED,) * 5
    assert not (home / "runs" / owner / LESSON_FILE).exists()


@pytest.mark.parametrize("owner", [None, "", "local", "../x"])
def test_a_page_without_a_browser_key_opens_outside_the_lesson(home, owner):
    assert lesson.restore(owner) == (UNCHANGED,) * 5


@pytest.mark.parametrize("content", ["not json", '{"step": "2"}', "[]", '{"step": 99}'])
def test_an_unreadable_or_stale_step_opens_outside_or_at_the_last_step(home, content):
    folder = home / "runs" / ("c" * 32)
    folder.mkdir(parents=True)
    (folder / LESSON_FILE).write_text(content)
    assert recall_step(home / "runs", "c" * 32, len(STEPS)) == (len(STEPS) - 1 if "99" in content else None)


def test_every_step_opens_a_tab_and_points_at_a_control_the_app_has(home):
    import gradio as gr

    from red_explorer.app.ui.interface import build_demo

    demo = build_demo(preload=False)
    tabs = {block.id: block.label for block in demo.blocks.values() if isinstance(block, gr.Tab)}
    elem_ids = [getattr(block, "elem_id", None) for block in demo.blocks.values()]
    assert [step.tab for step in STEPS] == ["about", "model", "inspect", "ablations", "compare", "explore"]
    for step in STEPS:
        assert tabs[step.tab] == step.tab_label and elem_ids.count(step.focus) == 1
    loads = [function.name for function in demo.fns.values() if any(kind == "load" for _, kind in function.targets)]
    assert loads == ["_start", "restore"]  # the app's page load first (API clients call it as "load"), then the step
