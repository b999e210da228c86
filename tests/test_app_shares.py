"""Runs shared by link: the viewer's page lists the shared run read-only, and nothing else of its owner's."""

import re
import zipfile
from dataclasses import replace

import gradio as gr
import pytest
from app_helpers import QUICK

from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.ui.handlers import compare, explore, export, inspect, runs, shares
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.interface import _open_shared, _start
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.core.registry import MethodSpec
from red_explorer.engine.generation import DecodingSettings
from red_explorer.runs.shares import GONE

SHARED = "RED full (ffn) (shared)"
BASE = "http://class.example:7860/"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RED_EXPLORER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SPACE_ID", raising=False)
    return tmp_path / "home"


def browser(files, registry: ModelRegistry) -> Session:
    """A new browser: its own random owner key, the tiny model and data loaded."""
    session = Session(Workbench(registry))
    _start(session, None)
    session.workbench.load_model(str(files[0]))
    session.workbench.load_data(files[1])
    return session


@pytest.fixture
def teacher_and_student(files, home):
    """The teacher keeps two runs and shares the first; the student keeps one run of their own."""
    teacher = browser(files, ModelRegistry())
    teacher.workbench.train(MethodSpec("red"), QUICK)
    teacher.workbench.train(MethodSpec("red", variant="bias"), QUICK)
    student = browser(files, teacher.workbench.registry)
    student.workbench.train(MethodSpec("red", variant="scale"), QUICK)
    link, _, _ = shares.share(teacher, "RED full (ffn)", BASE)
    assert link.startswith(f"{BASE}?run=")
    return teacher, student, link.removeprefix(f"{BASE}?run=")


def all_lists(session: Session) -> dict[str, list[str]]:
    """The run lists of Inspect, Compare, Explore and Export as the page shows them."""
    first = inspect.choices(session)[0]
    return {
        "inspect": first.choices,
        "compare": compare.choices(session)[1].choices,
        "explore": explore.choices(session)[0].choices,
        "export": export.choices(session).choices,
    }


def test_the_student_sees_the_shared_run_read_only_and_nothing_else(teacher_and_student):
    teacher, student, token = teacher_and_student
    assert len(token) == 43 and teacher.workbench.owner not in token
    note = shares.open_link(student, token)
    assert note.startswith(f"**{SHARED}** was shared with you: it is listed read-only in Inspect, Compare")
    base = plain(teacher.workbench.key.spec)  # the student has the run's model loaded: nothing to load
    assert note.endswith(f"(trained on {base}, the model this page uses).") and "load that model" not in note
    for name, labels in all_lists(student).items():
        assert labels == ["RED scale (ffn)", SHARED], name  # never the teacher's other run
    shown = runs.overview(student)
    assert f"**{SHARED}** (RED, " in shown and "shared with you, read-only" in shown
    assert "in 1 run of your own." in shown and "RED bias" not in shown  # the student's disk use: their own run only
    assert teacher.workbench.owner not in shown + note and shares.links(student, BASE)[0] == shares.NO_LINKS
    refused = re.escape(f"'{SHARED}' is shared with you read-only: only its owner can")
    with pytest.raises(ValueError, match=f"{refused} rename it"):
        runs.rename(student, SHARED, "mine")
    with pytest.raises(ValueError, match=f"{refused} delete it"):
        runs.delete(student, SHARED)
    with pytest.raises(ValueError, match="only its owner can share it"):
        shares.share(student, SHARED, BASE)
    assert [run.label for run in teacher.workbench.own_runs()] == ["RED full (ffn)", "RED bias (ffn)"]


def test_a_student_on_another_model_is_told_to_load_the_runs_model(teacher_and_student, files):
    teacher, student, token = teacher_and_student
    student.workbench.key = replace(student.workbench.key, spec="default")  # chose another model, not loaded yet
    note = shares.open_link(student, token)
    base = plain(teacher.workbench.key.spec)
    assert note.endswith(f"(trained on {base}: load that model in the Model tab to use it).")


def test_the_student_inspects_compares_and_exports_the_shared_run_as_the_teacher_would(teacher_and_student):
    teacher, student, token = teacher_and_student
    shares.open_link(student, token)
    summary = inspect.inspect(student, SHARED, "RED scale (ffn)")[0]
    assert summary.split("\n\n")[0].startswith(f"**{SHARED}**")
    settings = DecodingSettings(max_new_tokens=6)
    theirs = student.workbench.compare("red cat dog", None, [SHARED, "RED scale (ffn)"], settings).generations
    ours = teacher.workbench.compare("red cat dog", None, ["RED full (ffn)"], settings).generations
    assert [g.method for g in theirs] == ["base", SHARED, "RED scale (ffn)"]
    assert theirs[1].text == ours[1].text and theirs[0].text == ours[0].text
    archive, _ = export.export_edits(student, SHARED)
    original = teacher.workbench.export_edits_zip("RED full (ffn)")
    with zipfile.ZipFile(archive) as got, zipfile.ZipFile(original) as kept:
        assert sorted(got.namelist()) == sorted(kept.namelist()) and "metrics.json" in got.namelist()
        assert all(got.read(name) == kept.read(name) for name in kept.namelist())


def test_revoking_the_link_takes_the_run_off_the_students_page(teacher_and_student):
    teacher, student, token = teacher_and_student
    shares.open_link(student, token)
    listed, choices = shares.links(teacher, BASE)
    assert "- **RED full (ffn)** (made " in listed and f"`{BASE}?run={token}`" in listed
    assert choices.choices == [token] and choices.names[token].startswith("RED full (ffn) (made ")
    listed, choices, link = shares.revoke(teacher, token, BASE)
    assert (listed, choices.choices, link) == (shares.NO_LINKS, [], "")
    assert all(labels == ["RED scale (ffn)"] for labels in all_lists(student).values())
    assert shares.open_link(student, token) == f"✕ **The shared run cannot be opened**: {GONE}."
    assert [run.label for run in teacher.workbench.own_runs()] == ["RED full (ffn)", "RED bias (ffn)"]


def test_deleting_the_run_ends_its_links_and_a_bad_link_shows_a_message_only(teacher_and_student):
    teacher, student, token = teacher_and_student
    shares.open_link(student, token)
    runs.delete(teacher, "RED full (ffn)")
    assert shares.links(teacher, BASE)[0] == shares.NO_LINKS
    assert export.choices(student).choices == ["RED scale (ffn)"]
    for bad in [token, "not-a-token", "A" * 43]:
        assert shares.open_link(student, bad) == f"✕ **The shared run cannot be opened**: {GONE}."
    assert all(labels == ["RED scale (ffn)"] for labels in all_lists(student).values())
    assert shares.open_link(student, "") == "" and shares.open_link(student, None) == ""


def test_a_page_load_with_the_link_lists_the_run_and_it_outlives_an_idle_close(teacher_and_student):
    teacher, student, token = teacher_and_student
    note = _open_shared(student, gr.Request(query_params={"run": token}))
    assert note.startswith(f"**{SHARED}** was shared with you")
    assert _open_shared(student, gr.Request(query_params={})) == ""
    student.free()  # an idle page is freed; its next event gets a new workbench with the same owner
    runs = student.workbench.all_runs()  # a new page on the default model lists the gallery's runs too
    assert [run.label for run in runs if not run.gallery] == ["RED scale (ffn)", SHARED]
    own_link, _, _ = shares.share(teacher, "RED bias (ffn)", "")
    assert own_link.startswith("?run=")  # no address known: a link relative to the page
    assert shares.open_link(teacher, own_link.removeprefix("?run=")).startswith("This link opens one of your own")
    assert [run.label for run in teacher.workbench.all_runs()] == ["RED full (ffn)", "RED bias (ffn)"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"referer": "https://me-app.hf.space/?__theme=light&run=old", "host": "x"}, "https://me-app.hf.space/"),
        ({"referer": "http://10.0.0.5:7860/app/", "host": "10.0.0.5:7860"}, "http://10.0.0.5:7860/app/"),
        ({"host": "10.0.0.5:7860"}, "http://10.0.0.5:7860/"),
        (
            {"host": "internal:7860", "x-forwarded-host": "class.org", "x-forwarded-proto": "https"},
            "https://class.org/",
        ),
        ({}, ""),
    ],
)
def test_the_link_uses_the_address_the_owner_sees(headers, expected):
    assert shares.app_url(headers) == expected
