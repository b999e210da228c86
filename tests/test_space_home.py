"""On a Space, the run store lives on persistent storage when there is some; without it, the Export tab warns."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from red_explorer.app.ui.components import export
from red_explorer.runs import home
from red_explorer.runs.home import default_home

WARNING = "vanish when the Space restarts"


@pytest.fixture
def space(monkeypatch, tmp_path) -> Path:
    """A Space ($SPACE_ID) whose persistent storage is a tmp folder standing in for /data; no $RED_EXPLORER_HOME."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(home, "SPACE_DATA", data)
    monkeypatch.setenv("SPACE_ID", "someone/red-explorer")
    monkeypatch.delenv("RED_EXPLORER_HOME")
    return data


def _export_notes() -> list[str]:
    with gr.Blocks() as demo:
        export.build(gr.State())
    return [block.value for block in demo.blocks.values() if getattr(block, "elem_id", None) == "runs-restart-note"]


def test_space_with_persistent_storage_keeps_runs_there(space) -> None:
    assert default_home() == space / "red_explorer"
    assert home.restart_warning(default_home()) is None
    assert _export_notes() == []


def test_red_explorer_home_still_wins(space, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RED_EXPLORER_HOME", str(space / "mine"))
    assert default_home() == space / "mine"
    assert home.restart_warning(default_home()) is None  # under the persistent storage: kept
    monkeypatch.setenv("RED_EXPLORER_HOME", str(tmp_path / "elsewhere"))
    assert default_home() == tmp_path / "elsewhere"
    assert WARNING in home.restart_warning(default_home())  # a Space's disk outside /data is wiped on restart


@pytest.mark.parametrize("storage", ["missing", "read-only"])
def test_space_without_persistent_storage_warns_on_export(space, storage, monkeypatch) -> None:
    if storage == "missing":
        space.rmdir()
    else:  # as the Space's user (root may write anywhere, so ask os.access, not chmod)
        monkeypatch.setattr(home.os, "access", lambda path, mode: Path(path) != space)
    assert default_home() == Path.home() / ".cache" / "red_explorer"
    notes = _export_notes()
    assert len(notes) == 1
    assert WARNING in notes[0] and "Download edits" in notes[0]


def test_off_a_space_nothing_changes(space, monkeypatch) -> None:
    monkeypatch.delenv("SPACE_ID")
    assert default_home() == Path.home() / ".cache" / "red_explorer"  # /data is a Space's, not a laptop's
    assert home.restart_warning(default_home()) is None
    assert _export_notes() == []
