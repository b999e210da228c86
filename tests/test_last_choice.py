"""An owner's last model and data choice: written whole and owner-only, even when two tabs write at once."""

import threading

from red_explorer.app.data_state import DataState
from red_explorer.app.last_choice import CHOICE_FILE, recall, remember
from red_explorer.app.model_registry import ModelKey
from red_explorer.runs.store import RunStore


def test_two_tabs_remembering_at_once_leave_a_choice_whose_data_is_its_own(tmp_path):
    store, owner = RunStore(tmp_path / "runs"), "a" * 32
    uploads, errors = [], []
    for name in ("first.csv", "second.csv"):
        path = tmp_path / name
        path.write_text(f"prompt,response\n{name},{name * 2000}\n")
        uploads.append(DataState(path, name, 0.1, None, None))

    def tab(data: DataState) -> None:
        try:
            for _ in range(200):
                remember(store, owner, ModelKey("default"), data)
        except OSError as error:  # e.g. one tab's copy removed under the other
            errors.append(error)

    tabs = [threading.Thread(target=tab, args=(data,)) for data in uploads]
    for thread in tabs:
        thread.start()
    for thread in tabs:
        thread.join()
    assert errors == []
    choice = recall(store, owner)
    assert choice.data_name in ("first.csv", "second.csv")
    assert open(choice.data_path).read() == (tmp_path / choice.data_name).read_text()  # the copy is of its own file
    assert (store.root / owner / CHOICE_FILE).stat().st_mode & 0o777 == 0o600


def test_an_upload_is_not_copied_onto_a_nearly_full_disk(tmp_path, monkeypatch):
    store, owner = RunStore(tmp_path / "runs"), "b" * 32
    upload = tmp_path / "upload.csv"
    upload.write_text("prompt,response\nhi,there\n")
    data = DataState(upload, "upload.csv", 0.1, None, None)
    monkeypatch.setenv("RED_EXPLORER_MIN_FREE_MB", "1e12")  # more than any disk has free
    choice = remember(store, owner, ModelKey("default"), data)
    assert choice.data_path is None and not (store.root / owner / "last-data").exists()
    monkeypatch.setenv("RED_EXPLORER_MIN_FREE_MB", "0")
    assert open(remember(store, owner, ModelKey("default"), data).data_path).read() == upload.read_text()
