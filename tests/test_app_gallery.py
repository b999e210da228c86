"""Gallery runs in the app: listed read-only beside the user's runs, shown prepared at once, usable with no training."""

from __future__ import annotations

import zipfile
from html import escape

import pytest

from red_explorer.app.model_registry import ModelKey, ModelRegistry
from red_explorer.app.ui.handlers import common, compare, explore, export, gallery, inspect, runs
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.runs.gallery import gallery_entry
from red_explorer.runs.store import RunStore

PIRATE, COMPOSED = "Pirate style · RED", "Formal, then pirate · composed"
CONTROL = "Pirate style · RED bias only (control vector)"
CAUSAL = {
    PIRATE,
    "Pirate style · LoRA r=8",
    "Pirate style · TARE",
    CONTROL,
    "Formal register · RED",
    "Data to text · RED",
    COMPOSED,
}


def refusing_loader(*args, **kwargs):
    raise AssertionError("a model was loaded: this view must not compute anything")


@pytest.fixture
def cold(tmp_path):
    """A new browser on a cold app: the default model chosen but not loaded, no runs of its own."""
    registry = ModelRegistry(loader=refusing_loader)
    return Session(Workbench(registry, RunStore(tmp_path / "runs"), owner="visitor"))


def test_the_gallery_runs_of_the_model_are_listed_read_only_beside_the_users_runs(cold):
    workbench = cold.workbench
    listed = {label: run for label, run in workbench.runs.items()}
    assert set(listed) == CAUSAL  # the MiniLM sentiment run is listed once MiniLM is loaded
    assert all(run.gallery and run.shared for run in listed.values())
    choices = common.run_choices(workbench)
    assert set(choices.choices) == CAUSAL and choices.names[PIRATE] == f"Gallery › {PIRATE}"
    assert choices.value == PIRATE  # a page with no runs of its own opens on the gallery's lead run
    assert common.run_choices(workbench, prefer=("lora",)).value == "Pirate style · LoRA r=8"
    assert common.latest(workbench) == []  # Compare and Train tick the user's own runs, not the gallery's
    overview = runs.overview(cold)
    assert overview.count("from the gallery, read-only") == len(CAUSAL)
    with pytest.raises(ValueError, match="gallery run, read-only: nobody can rename it"):
        runs.rename(cold, PIRATE, "mine")
    with pytest.raises(ValueError, match="gallery run, read-only: nobody can delete it"):
        runs.delete(cold, PIRATE)
    with pytest.raises(ValueError, match="gallery run, read-only: nobody can delete it; it ships with the app$"):
        runs.may_delete(cold, PIRATE)  # the page's check before its run list is touched
    with pytest.raises(ValueError, match="nobody can rename it; it ships with the app \\(Export"):
        runs.may_rename(cold, PIRATE)
    with pytest.raises(ValueError, match="gallery run, read-only: nobody can share it"):
        workbench.share_run(PIRATE)
    assert PIRATE in workbench.runs  # still there
    workbench.key = ModelKey("minilm", "classification")
    assert list(workbench.runs) == ["Sentiment · RED on MiniLM"]


def test_compares_prepared_view_shows_the_recorded_generations_at_once_without_computing(cold):
    offered = gallery.prepared(cold, [])
    assert "Ready-made gallery runs" in offered and escape(PIRATE) in offered
    shown = gallery.prepared(cold, [PIRATE, COMPOSED])
    for label in (PIRATE, COMPOSED):
        entry = gallery_entry(cold.workbench.run(label).record)
        assert f"validation loss {entry.check['value']:.4g} (recorded)" in shown
        assert escape(entry.decoding) in shown and entry.decoding.startswith("greedy")
        for item in entry.showcase:
            assert escape(item.prompt) in shown and escape(item.base) in shown and escape(item.run) in shown
    entry = gallery_entry(cold.workbench.run(PIRATE).record)
    prompt, example, max_new_tokens, sample, penalty, no_repeat = gallery.live_settings(cold, ["x", PIRATE])
    assert (prompt, example, sample, no_repeat) == (entry.showcase[0].prompt, None, False, 0)
    assert (max_new_tokens, penalty) == (32, 1.1)
    with pytest.raises(ValueError, match="tick a gallery run"):
        gallery.live_settings(cold, [])


def test_inspect_and_export_work_on_a_gallery_run_with_no_training_and_no_model(cold, tmp_path):
    assert inspect.inspect_if_any(cold, None, None)[0].startswith(f"**{COMPOSED}**")  # a cold page shows one at once
    inspected = inspect.inspect(cold, PIRATE)
    assert inspected[0].startswith(f"**{PIRATE}**") and "30 edited sites, 34,560 learned values" in inspected[0]
    assert len(cold.workbench.red_edits(PIRATE)) == 30
    archive = cold.workbench.export_edits_zip(PIRATE)
    with zipfile.ZipFile(archive) as bundle:
        names = set(bundle.namelist())
    assert "metrics.json" in names and "gallery.json" not in names and "run.json" not in names
    assert names - {"metrics.json"} == set(cold.workbench.run(PIRATE).record.files)
    path, status = export.export_notebook(cold, PIRATE)  # the recipe of gallery.json, no model loaded
    assert path.endswith("pirate-style-red.ipynb") and status.startswith(f"**Notebook of {PIRATE}** ready")
    with pytest.raises(ValueError, match="not trained here .imported or composed edits."):
        cold.workbench.export_notebook(COMPOSED)


@pytest.mark.real_model
def test_compare_explore_and_export_on_gallery_runs_with_the_real_default_model(tmp_path):
    session = Session(Workbench(ModelRegistry(), RunStore(tmp_path / "runs"), owner="teacher"))
    session.workbench.load_model("default")
    entry = gallery_entry(session.workbench.run(PIRATE).record)
    settings = gallery.live_settings(session, [PIRATE])
    shown, cards, table = compare.compare(
        session, settings[0], settings[1], [PIRATE], *settings[2:4], 0.7, *settings[4:]
    )
    texts = dict(zip(table["method"], table["text"], strict=True))
    assert texts == {"base": entry.showcase[0].base, PIRATE: entry.showcase[0].run}  # live = the recorded answer
    drift = explore.drift(session, COMPOSED, entry.showcase[0].prompt, "Arr! Paris be the capital, matey!")
    assert "Arr" in str(drift[0])
    path, note = export.export_control_vector(session, CONTROL)
    assert path.endswith(".gguf") and note.startswith(f"**Control vector of {CONTROL}** ready")
