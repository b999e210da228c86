"""ZeroGPU: the events that compute on the model do their work in ``spaces.GPU``'s worker, each with its duration."""

from __future__ import annotations

import importlib
import pickle
import shutil
import sys
from dataclasses import replace

import pytest

from red_explorer.app.model_registry import ModelKey, ModelRegistry
from red_explorer.app.stop_flag import StopFlag
from red_explorer.app.ui import gpu, zero_gpu
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import data, train
from red_explorer.app.workbench_ticket import DataFile, adopt, rebuild, ticket


def test_off_zero_gpu_events_are_left_alone(monkeypatch) -> None:
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setitem(sys.modules, "spaces", None)  # importing it would fail: it is never imported
    event = ui_event(train.train)
    assert not hasattr(event, "gpu_seconds") and event.__name__ == "train"


def test_on_zero_gpu_the_app_wires_the_granted_events(forking_spaces) -> None:
    from red_explorer.app.ui import build_demo

    demo = build_demo(preload=False)
    wired = {block.api_name: getattr(block.fn, "gpu_seconds", None) for block in demo.fns.values() if block.api_name}
    assert wired["train"] == 300 and wired["ablate"] == 300 and wired["sweep"] == 300
    assert wired["compare"] == 90 and wired["tare_routing"] == 30 and wired["inspect"] is None  # vectors from files
    assert wired["export_merged"] == 90 and wired["import_edits"] == 30
    assert wired["load_data"] is None and wired["load_model"] is None and wired["export"] is None  # no model compute
    granted = {block.fn.__name__ for block in demo.fns.values() if hasattr(block.fn, "gpu_seconds")}
    assert granted == {key.split(".")[1] for key in gpu.GPU_SECONDS}  # every listed handler is wired, granted
    assert list(forking_spaces.decorated) == [zero_gpu.granted_work]  # one granted function: one worker for all


def test_every_listed_handler_exists_and_fits_a_grant() -> None:
    for key, seconds in gpu.GPU_SECONDS.items():
        module, name = key.split(".")
        handler = getattr(importlib.import_module(f"red_explorer.app.ui.handlers.{module}"), name)
        assert gpu.gpu_seconds(handler) == seconds and 0 < seconds <= 300, key
    assert gpu.gpu_seconds(data.load_data) is None


def test_zero_gpu_without_spaces_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    monkeypatch.setitem(sys.modules, "spaces", None)
    with pytest.raises(ImportError, match="pip install spaces"):
        ui_event(train.train)


def test_a_session_travels_to_a_zero_gpu_worker(files) -> None:
    from app_helpers import new_session

    session = new_session(files)
    travelled = pickle.loads(pickle.dumps(session))
    assert travelled.workbench.owner == session.workbench.owner
    assert travelled.workbench.key == session.workbench.key and travelled.workbench.data.name == "words.csv"
    assert travelled.workbench.folder() == session.workbench.folder()  # files made there are the page's
    assert travelled.workbench.registry is not session.workbench.registry  # its models are the receiver's own


def test_a_stop_flag_is_one_flag_for_every_process_sharing_its_folder(tmp_path) -> None:
    (tmp_path / "page").mkdir()  # the page's scratch folder
    here, there = StopFlag(tmp_path / "page" / "stop"), StopFlag(tmp_path / "page" / "stop")
    assert not here.is_set() and not there.is_set()
    here.set()
    assert there.is_set()
    there.clear()
    assert not here.is_set()
    shutil.rmtree(tmp_path / "page")
    assert here.is_set()  # the page's folder is gone: its job has nobody to report to


def test_a_forked_process_keeps_the_loaded_models_under_locks_of_its_own() -> None:
    loaded = object()
    registry = ModelRegistry(loader=lambda *args, **kwargs: loaded)
    key = ModelKey("tiny", device="cpu", dtype="float32")
    registry.get(key)
    base_lock = registry.base_lock(key)
    with registry._lock, base_lock:  # held by another thread at the fork: never released there
        child = registry.in_this_process()
    assert child.get(key) is loaded and child.loaded_keys() == [key.resolved()]
    assert child.base_lock(key) is not base_lock


def test_adopt_takes_what_the_job_changed_and_keeps_what_changed_here(files, tmp_path) -> None:
    from app_helpers import new_session, tiny_rows, write_csv

    workbench = new_session(files).workbench
    other = write_csv(tmp_path / "other.csv", tiny_rows(30, seed=1))
    sent = ticket(workbench)
    there = rebuild(replace(sent, data=DataFile(other, "other.csv", 0.2, None, None)))  # as a demo loads its sample
    there.ablation_rows = [{"label": "RED full (ffn)"}]
    workbench.sweep_points = [{"run_label": "lr 1e-3"}]  # meanwhile, another job of the page ended here
    adopt(workbench, sent, ticket(there))
    assert workbench.ablation_rows == [{"label": "RED full (ffn)"}]
    assert workbench.sweep_points == [{"run_label": "lr 1e-3"}]  # not put back to what the job was sent
    assert workbench.data.name == "other.csv" and workbench.data.validation_fraction == 0.2
