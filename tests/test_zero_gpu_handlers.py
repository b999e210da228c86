"""The app's handlers on ZeroGPU, through ``fake_spaces`` (a forked, reused worker; everything pickled): the work
runs there, and its runs, results and Stop meet the session here."""

import base64
import json
import os
import time
from dataclasses import replace

import numpy as np
import pytest
from app_helpers import QUICK, TRAIN, new_session, save_tiny_llama

from red_explorer.app.demo_presets import PRESETS
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.options import TrainOptions
from red_explorer.app.ui.gpu import gpu_task
from red_explorer.app.ui.handlers import ablate, common, compare, explore, gallery, inspect, model, train
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.core.registry import MethodSpec


class Progress:
    """Stands in for gr.Progress: keeps every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, fraction, desc=None):
        self.calls.append((fraction, desc))


@pytest.fixture(scope="module")
def trained(files):
    """A session with a RED run and a TARE run, trained in this process."""
    session = new_session(files)
    session.red = session.workbench.train(MethodSpec("red", variant="full", sites=["ffn"]), QUICK).label
    session.tare = session.workbench.train(MethodSpec("tare", sites=["ffn"], num_editors=3, top_k=2), QUICK).label
    yield session
    session.close()


def in_worker(handler):
    """The handler's stand-in on ZeroGPU (``forking_spaces`` active): its work runs in the fake's worker."""
    stand_in = gpu_task(handler)
    assert stand_in is not handler
    return stand_in


def plotted(figure) -> list[list]:
    """Each trace's x, y and z as the page gets them (the figure's JSON), flattened, typed arrays decoded."""
    values = []
    for trace in json.loads(figure.to_json())["data"]:
        for axis in ("x", "y", "z"):
            value = trace.get(axis)
            if isinstance(value, dict):  # a typed array: {"dtype", "bdata", "shape"}
                value = np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"])
            if value is not None:
                values.append(np.ravel(np.asarray(value, dtype=object)).tolist())
    return values


def test_a_run_trained_in_the_worker_is_kept_for_this_session(forking_spaces, files, monkeypatch):
    monkeypatch.setattr(common, "POLL_SECONDS", 0.01)  # the worker, forked later, polls as often: progress shows
    session, progress = new_session(files), Progress()
    outputs = list(in_worker(train.train)(session, ["RED"], "full", ["ffn"], progress=progress, **TRAIN))
    assert forking_spaces.worker_pids[0] != os.getpid() and forking_spaces.durations == [300]
    status, figure, table = outputs[-1]
    [run] = session.workbench.runs.values()  # listed from the run store the worker saved it to
    assert "Done." in status and run.label in status and list(table["method"]) == [run.label]
    assert len(run.result.train_loss) == 3 and run.result.stopped_reason == "completed"
    assert figure.data[0].name.startswith(run.label) and len(figure.data[0].y) == 3  # live curve, drawn there
    assert run.record.seconds_per_step > 0  # the worker's timings, kept with the run
    assert progress.calls and progress.calls[-1][1].startswith("RED full (ffn): step")
    assert session.job is None


def test_a_model_loaded_after_the_fork_trains_on_the_same_worker(forking_spaces, files, tmp_path):
    session, train_there = new_session(files), in_worker(train.train)
    list(train_there(session, ["RED"], "full", ["ffn"], **TRAIN))
    other = save_tiny_llama(tmp_path / "other", seed=1)
    model.load_model(session, str(other), "causal-lm", "auto", "auto")  # the worker's snapshot has not got it
    list(train_there(session, ["RED"], "full", ["ffn"], **TRAIN))
    assert len(forking_spaces.worker_pids) == 2 and len(set(forking_spaces.worker_pids)) == 1  # reused
    [run] = session.workbench.runs.values()
    assert run.record.base.spec == str(other) and len(run.result.train_loss) == 3
    assert len(session.workbench.all_runs()) == 2


def test_stop_pressed_here_ends_the_training_in_the_worker(forking_spaces, files):
    session = new_session(files)
    options = dict(max_steps=400, batch_size=8, max_length=64, eval_every=None)
    outputs = in_worker(train.train)(session, ["RED"], "full", ["ffn"], **options)
    next(outputs)
    assert session.job == "training"
    assert "Stopping" in common.stop(session)
    status, _, table = list(outputs)[-1]
    [run] = session.workbench.runs.values()
    assert "Stopped." in status and run.result.stopped_reason == "stopped by user"
    assert len(run.result.train_loss) < 400 and list(table["stopped"]) == ["stopped by user"]


def test_a_page_that_leaves_stops_its_training_in_the_worker(forking_spaces, files):
    session = new_session(files)
    options = dict(max_steps=400, batch_size=8, max_length=64, eval_every=None)
    outputs = in_worker(train.train)(session, ["RED"], "full", ["ffn"], **options)
    next(outputs)
    outputs.close()  # what Gradio does when the page goes away
    for _ in range(200):  # the job saves its run once its step ends
        if session.workbench.runs:
            break
        time.sleep(0.05)
    [run] = session.workbench.runs.values()
    assert run.result.stopped_reason == "stopped by user" and len(run.result.train_loss) < 400
    assert session.job is None


def test_compare_in_the_worker_answers_as_here(forking_spaces, trained):
    arguments, bar = (trained, "red cat runs", None, [trained.red], 8), Progress()
    here, there = compare.compare(*arguments), in_worker(compare.compare)(*arguments, progress=bar)
    assert bar.calls[-1] == (1.0, "done")  # its progress came back
    live = in_worker(gallery.generate_live)(*arguments, False, 0.7, 1.0, 0)  # Compare's generation, granted too
    assert list(live[2]["text"]) == list(compare.compare(*arguments, False, 0.7, 1.0, 0)[2]["text"])
    assert list(there[2]["method"]) == list(here[2]["method"]) == ["base", trained.red]
    assert list(there[2]["text"]) == list(here[2]["text"])
    assert there[0].split("\n\n")[0] == here[0].split("\n\n")[0]  # the prompt as the model sees it
    with pytest.raises(ValueError, match="type a prompt or pick a validation example"):  # a refusal keeps its words
        in_worker(compare.compare)(trained, "", None, [trained.red], 8)


def test_explore_in_the_worker_answers_as_here(forking_spaces, trained):
    arguments = (trained, trained.red, 1.5, "red cat runs", 8)
    assert in_worker(explore.generate)(*arguments) == explore.generate(*arguments)
    here, there = explore.dose(trained, trained.red, 64), in_worker(explore.dose)(trained, trained.red, 64)
    assert len(there.data) == len(here.data) > 0
    assert plotted(there) == [pytest.approx(values, abs=1e-5) for values in plotted(here)]


def test_tare_routing_in_the_worker_answers_as_here(forking_spaces, trained):
    here = inspect.tare_view(trained, trained.tare, "red cat sings")
    there = in_worker(inspect.tare_view)(trained, trained.tare, "red cat sings")
    assert here[0].data[0].z.shape[0] == 2 and plotted(there[0]) == plotted(here[0])  # which editor each token took
    assert plotted(there[1]) == plotted(here[1])
    assert plotted(there[2]) == [pytest.approx(values, abs=1e-6) for values in plotted(here[2])]


def test_an_ablation_in_the_worker_leaves_its_rows_with_this_session(forking_spaces, files):
    session, rows = new_session(files), ["RED full (ffn)", "RED bias (ffn)"]
    status, table, _ = list(in_worker(ablate.ablate)(session, rows, 2, 8, 64))[-1]
    assert "<b>Done:</b> 2/2 rows" in status and list(table["row"]) == rows
    assert [row["label"] for row in session.workbench.ablation_rows] == rows
    _, restored, _ = ablate.restore_after_failure(session)  # reads the rows this session adopted
    assert list(restored["row"]) == rows
    assert {run.group for run in session.workbench.runs.values()} == {session.workbench.runs[rows[0]].group}


def test_a_demo_in_the_worker_leaves_its_model_data_and_runs_with_this_session(forking_spaces, files, monkeypatch):
    style = replace(PRESETS["style"], model=str(files[0]), options=TrainOptions(max_steps=2))
    monkeypatch.setitem(PRESETS, "style", style)  # the worker, forked later, has it too
    session = Session(Workbench(ModelRegistry()))  # a new page: no model, no data
    outputs = list(in_worker(model.run_demo)(session, "style"))[-1]
    workbench = session.workbench
    assert workbench.key.spec == str(files[0]) and workbench.data.name == style.sample  # loaded there, taken here
    labels = workbench.run_labels()
    assert len(labels) == 2 and list(outputs[-1]["method"]) == ["base", *labels]
