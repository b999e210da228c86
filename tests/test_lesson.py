"""The guided lesson's handlers: Next / Back / End keep the step per owner, a page load reopens it, every step
names a tab and a control the app really has, and a user with no runs of their own gets the gallery's."""

from __future__ import annotations

import json
import shutil

import pytest

from red_explorer.app.lesson_progress import LESSON_FILE, recall_step
from red_explorer.app.lesson_text import PIRATE_LORA, PIRATE_RED, STEPS
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.ui.handlers import compare, data, explore, gallery, lesson
from red_explorer.app.ui.handlers.common import Notice, Visible
from red_explorer.app.ui.handlers.navigation import UNCHANGED
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.runs.gallery import gallery_runs
from red_explorer.runs.store import RunStore

KEPT = (UNCHANGED,) * 10  # a reload outside the lesson: the panel, its buttons and the three run lists stay


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
    assert lesson.restore(owner) == KEPT  # never started: the page stays as it is
    start, panel, heading, text, target, back, forward, *lists = lesson.start(session)
    assert (start, panel, back, forward) == (Visible(False), Visible(True), Visible(False), Visible(True))
    assert heading == "### Lesson · step 1 of 6 · What RED is" and target == "What is RED?|about-figure"
    assert lists == [UNCHANGED] * 3
    for _ in range(len(STEPS) + 3):  # past the end: the last step stays
        *_, heading, text, target, back, forward, _, _, _ = lesson.next_step(session)
    assert heading.startswith("### Lesson · step 6 of 6") and "End lesson" in text and target.startswith("Explore|")
    assert (back, forward) == (Visible(True), Visible(False))  # the first step has no Back, the last no Next
    *_, heading, _, target, back, forward, _, _, _ = lesson.previous_step(session)
    assert (back, forward) == (Visible(True), Visible(True))
    assert heading == "### Lesson · step 5 of 6 · Side by side with LoRA" and target == "Compare|compare-cards"
    assert (
        lesson.restore(owner) == lesson.view(4) and lesson.view(4)[7:] == (UNCHANGED,) * 3
    )  # a reload: the same step, read with the browser's key
    assert lesson.restore("b" * 32) == KEPT  # another browser is not in the lesson
    assert lesson.end(session) == lesson.OUTSIDE and lesson.restore(owner) == KEPT
    assert not (home / "runs" / owner / LESSON_FILE).exists()


def test_a_lesson_started_before_the_page_load_finished_reopens_after_a_reload(home):
    first_visit = Session(Workbench(ModelRegistry(), store=RunStore()))  # no key yet: the page load is under way
    lesson.start(first_visit, "")
    lesson.next_step(first_visit, "")
    key = first_visit.adopt_owner("")  # the page load: the browser keeps the key the step was kept under
    assert lesson.restore(key) == lesson.view(1)
    returning = Session(Workbench(ModelRegistry(), store=RunStore()))  # a later visit clicks as fast
    lesson.next_step(returning, key)
    assert lesson.restore(key) == lesson.view(2) and returning.adopt_owner(key) == key


@pytest.mark.parametrize("owner", [None, "", "local", "../x"])
def test_a_page_without_a_browser_key_opens_outside_the_lesson(home, owner):
    assert lesson.restore(owner) == KEPT


@pytest.mark.parametrize("content", ["not json", '{"step": "2"}', "[]", '{"step": 99}'])
def test_an_unreadable_or_stale_step_opens_outside_or_at_the_last_step(home, content):
    folder = home / "runs" / ("c" * 32)
    folder.mkdir(parents=True)
    (folder / LESSON_FILE).write_text(content)
    assert recall_step(home / "runs", "c" * 32, len(STEPS)) == (len(STEPS) - 1 if "99" in content else None)


def test_every_step_opens_a_tab_and_points_at_a_control_the_app_has(home):
    import gradio as gr

    from red_explorer.app.ui.components.lesson import SELECTOR_IDS
    from red_explorer.app.ui.interface import build_demo

    demo = build_demo(preload=False)
    tabs = {block.id: block.label for block in demo.blocks.values() if isinstance(block, gr.Tab)}
    elem_ids = [getattr(block, "elem_id", None) for block in demo.blocks.values()]
    assert [step.tab for step in STEPS] == ["about", "compare", "inspect", "ablations", "compare", "explore"]
    for step in STEPS:
        assert tabs[step.tab] == step.tab_label and elem_ids.count(step.focus) == 1
    assert [elem_id.split("-")[0] for elem_id in SELECTOR_IDS] == list(lesson.SELECTORS)
    start = next(function for function in demo.fns.values() if function.name == "start")
    assert [block.elem_id for block in start.outputs][-3:] == list(SELECTOR_IDS)  # the run lists a step sets
    loads = [function.name for function in demo.fns.values() if any(kind == "load" for _, kind in function.targets)]
    assert loads == ["_start", "restore"]  # the app's page load first (API clients call it as "load"), then the step


def refusing_loader(*args, **kwargs):
    raise AssertionError("a model was loaded: the lesson's steps must not compute anything")


def cold_session(root) -> Session:
    """A new browser on a cold app: the default model chosen, not loaded."""
    return Session(Workbench(ModelRegistry(loader=refusing_loader), RunStore(root), owner="class"))


def test_with_no_runs_of_their_own_the_steps_pick_the_gallerys_pirate_runs(tmp_path):
    cold = cold_session(tmp_path / "runs")
    assert [lesson.gallery_picks(cold, index) for index in range(len(STEPS))] == [
        (),
        (PIRATE_RED,),
        (PIRATE_RED,),
        (),
        (PIRATE_RED, PIRATE_LORA),
        (PIRATE_RED,),
    ]
    seen = [lesson.start(cold)] + [lesson.next_step(cold) for _ in range(len(STEPS) - 1)]
    assert seen[1][4] == "Compare|compare-prepared" and "Teach it a style" in seen[1][3]  # the demo: optional
    # (Inspect's Run A, Compare's ticked runs, Explore's run), as each step leaves them
    assert [step[7:] for step in seen] == [
        (UNCHANGED, UNCHANGED, UNCHANGED),
        (UNCHANGED, [PIRATE_RED], UNCHANGED),
        (PIRATE_RED, UNCHANGED, UNCHANGED),
        (UNCHANGED, UNCHANGED, UNCHANGED),
        (UNCHANGED, [PIRATE_RED, PIRATE_LORA], UNCHANGED),
        (UNCHANGED, UNCHANGED, PIRATE_RED),
    ]
    assert "Arr! The French be cap" in gallery.prepared(cold, seen[1][8])  # the recorded answers, no computing


def test_the_gallery_runs_a_step_ticks_stay_ticked_and_are_never_new(tmp_path):
    """Compare opened on a step's gallery runs keeps them (listed or not); Explore pairs two different runs."""
    cold = cold_session(tmp_path / "runs")
    ticked = [PIRATE_RED, PIRATE_LORA]
    for listed in (None, [], compare.listed_runs(cold)):
        assert compare.choices(cold, ticked, listed)[1].value == ticked
    _, first, second = explore.choices(cold)
    assert first.value == PIRATE_RED and second.value not in (None, PIRATE_RED)
    assert cold.workbench.runs[second.value].gallery and cold.workbench.runs[second.value].spec.layers is None


def test_a_user_with_a_run_of_their_own_keeps_the_tabs_choice(tmp_path):
    shipped = next(record for record in gallery_runs() if record.label == PIRATE_RED)
    mine = tmp_path / "runs" / "class" / shipped.id
    shutil.copytree(shipped.path, mine)
    record = json.loads((mine / "run.json").read_text()) | {"owner": "class", "label": "my pirate", "group": None}
    (mine / "run.json").write_text(json.dumps(record))
    session = cold_session(tmp_path / "runs")
    assert not session.workbench.runs["my pirate"].gallery
    assert all(lesson.gallery_picks(session, index) == () for index in range(len(STEPS)))
    assert lesson.start(session)[7:] == lesson.next_step(session)[7:] == (UNCHANGED,) * 3


def test_the_ablation_step_loads_the_pirate_sample_when_no_data_is_loaded_so_run_ablation_works(files, home):
    from red_explorer.app.ui.handlers import ablate
    from red_explorer.app.ui.handlers import model as model_handlers

    session = browser_session("d" * 32)
    model_handlers.load_model(session, str(files[0]), "causal-lm", "auto", "auto")  # the model, no data: a student
    lesson.start(session)
    kept = (UNCHANGED, UNCHANGED)
    assert lesson.load_sample(session) == kept  # steps 1-3 load nothing
    for _ in range(3):
        assert lesson.load_sample(session) == kept and session.workbench.data is None
        *_, text, target, _, _, _, _, _ = lesson.next_step(session)
    assert target == "Ablations|ablation-rows"
    shown, note = lesson.load_sample(session)
    assert session.workbench.data.name == "pirate_style.jsonl" and session.workbench.max_length == 128
    assert note == data.length_line(session.workbench.data, 128) and "training examples" in note
    assert shown == (
        f"{text}\n\n*No data was loaded, so the lesson loaded the bundled sample **Pirate speak: a new answer style** "
        "(pirate_style.jsonl); the **Data** tab shows it.*"
    )
    running = ablate.ablate(session, ["RED bias (ffn)"], max_steps=1, batch_size=2, max_length=64)
    first = next(running)  # not refused ("no data loaded yet"); a tiny tokenizer's pieces may make a length warning
    running.close()
    status, table, _ = first.outputs if isinstance(first, Notice) else first
    assert "Running" in status and list(table.columns) == ablate.COLUMNS
    assert lesson.load_sample(session) == kept  # data loaded: kept as it is
    lesson.next_step(session)
    assert lesson.load_sample(session) == kept and session.workbench.data.name == "pirate_style.jsonl"
