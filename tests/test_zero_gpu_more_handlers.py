"""More of the app's handlers on ZeroGPU, through ``fake_spaces``: Explore's measures, arithmetic and control vector,
Export's merged model and imported edits, the sweep. Each answers in the worker as it does here, and what it keeps
(a run, a file, the sweep's points) is this session's afterwards."""

import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from app_helpers import QUICK, new_session
from safetensors.torch import load as load_safetensors
from test_zero_gpu_handlers import Progress, in_worker, plotted

from red_explorer.app import sweeping
from red_explorer.app.ui.handlers import common, explore, export, sweep
from red_explorer.choice.cost import CostConfig
from red_explorer.core.registry import MethodSpec
from red_explorer.explore import layers
from red_explorer.explore.runs import read_red_run

MAX_LENGTH = 64


@pytest.fixture(scope="module")
def trained(files):
    """A session with two full RED runs (at two rates) and a bias-only RED run on layer 1 (a control vector's)."""
    session, full = new_session(files), MethodSpec("red", variant="full", sites=["ffn"])
    workbench = session.workbench
    session.red = workbench.train(full, QUICK).label
    session.faster = workbench.train(full, replace(QUICK, learning_rate=0.05)).label
    session.bias = workbench.train(MethodSpec("red", variant="bias", sites=["ffn"], layers=[1]), QUICK).label
    yield session
    session.close()


def vectors(session, label: str) -> dict[str, torch.Tensor]:
    """The RED vectors of one of the session's runs, read from its files."""
    return read_red_run(session.workbench.run(label).record.path).vectors


def assert_same_vectors(first: dict, second: dict) -> None:
    assert set(first) == set(second) and first
    for name, vector in first.items():
        torch.testing.assert_close(second[name], vector, rtol=0, atol=0)


def merged_weights(archive: str) -> dict[str, torch.Tensor]:
    """The weights of a merged-model zip, read into memory (the next export of the run replaces the file)."""
    with zipfile.ZipFile(archive) as opened:
        [name] = [name for name in opened.namelist() if name.endswith(".safetensors")]
        return load_safetensors(opened.read(name))


def test_regenerate_in_the_worker_answers_as_here(forking_spaces, trained):
    arguments = (trained, trained.red, 2.0, "blue dog sings", 8)
    here = explore.regenerate(*arguments)
    assert in_worker(explore.regenerate)(*arguments) == here and "α = 2" in here[0]


def test_drift_in_the_worker_answers_as_here(forking_spaces, trained):
    for text in ("cat cat", ""):  # a text typed, or none: the run generates it first
        arguments = (trained, trained.red, "red cat runs", text, 8)
        here = explore.drift(*arguments)
        assert in_worker(explore.drift)(*arguments) == here and 'class="drift-token"' in here[0]


def test_layers_in_the_worker_fill_the_bar_while_they_run(forking_spaces, trained, monkeypatch):
    monkeypatch.setattr(common, "POLL_SECONDS", 0.01)  # the worker, forked later, polls as often
    evaluate = layers.evaluate
    monkeypatch.setattr(layers, "evaluate", lambda *args: (time.sleep(0.2), evaluate(*args))[1])  # passes take time
    bar = Progress()
    there = in_worker(explore.layers)(trained, trained.red, MAX_LENGTH, bar)
    assert plotted(there) == [
        pytest.approx(values, abs=1e-5) for values in plotted(explore.layers(trained, trained.red, MAX_LENGTH))
    ]
    fractions = [fraction for fraction, _ in bar.calls]
    assert fractions == sorted(fractions) and bar.calls[-1] == (1.0, "done")
    assert len({fraction for fraction in fractions if fraction < 1}) >= 3  # heard while it ran, not only at its end


def test_layers_in_the_worker_answer_as_here(forking_spaces, trained):
    here = explore.layers(trained, trained.red, MAX_LENGTH)
    there = in_worker(explore.layers)(trained, trained.red, MAX_LENGTH)
    assert len(there.data) == len(here.data) == 2 and there.layout.title.text == here.layout.title.text
    assert plotted(there) == [pytest.approx(values, abs=1e-5) for values in plotted(here)]
    lines = [pytest.approx(shape.y0, abs=1e-5) for shape in here.layout.shapes]
    assert [shape.y0 for shape in there.layout.shapes] == lines  # the base's and the run's loss


def test_a_run_combined_in_the_worker_is_kept_for_this_session(forking_spaces, trained):
    arguments = ("mix", trained.red, trained.faster, 0.5, 2.0)
    status, chosen, first, second = in_worker(explore.combine)(trained, *arguments, "mixed there")
    assert "Kept **mixed there**" in status and chosen.value == "mixed there"
    assert "mixed there" in first.choices and "mixed there" in second.choices
    assert "mixed there" in trained.workbench.run_labels()  # adopted through the run store
    explore.combine(trained, *arguments, "mixed here")
    assert_same_vectors(vectors(trained, "mixed here"), vectors(trained, "mixed there"))


def test_a_control_vector_written_in_the_worker_is_the_one_written_here(forking_spaces, trained):
    here = Path(explore.control_vector(trained, trained.bias))
    written_here = here.read_bytes()  # the same path: the worker writes it again
    there = Path(in_worker(explore.control_vector)(trained, trained.bias))
    assert there == here and there.read_bytes() == written_here and written_here
    with pytest.raises(ValueError, match="has a scale part .*“bias only, layers ≥ 1”"):  # a refusal keeps its words
        in_worker(explore.control_vector)(trained, trained.red)


def test_a_merged_model_exported_in_the_worker_is_the_one_exported_here(forking_spaces, trained):
    here, _ = export.export_merged(trained, trained.red)
    weights_here = merged_weights(here)
    there, status = in_worker(export.export_merged)(trained, trained.red)
    assert Path(there).is_file() and status.startswith(f"**Merged model of {trained.red}** ready")
    weights_there = merged_weights(there)
    assert set(weights_there) == set(weights_here) and weights_here
    for name, weight in weights_here.items():
        assert torch.equal(weights_there[name], weight), name


def test_edits_imported_in_the_worker_are_a_run_of_this_session(forking_spaces, trained):
    archive, _ = export.export_edits(trained, trained.bias)
    status, choices = in_worker(export.import_edits)(trained, archive)
    label = choices.value
    assert f"**Loaded {label}**" in status and label in trained.workbench.run_labels()
    assert_same_vectors(vectors(trained, trained.bias), vectors(trained, label))
    _, here = export.import_edits(trained, archive)
    assert here.value != label and here.value in trained.workbench.run_labels()
    assert_same_vectors(vectors(trained, here.value), vectors(trained, label))


def quick_config(*args):
    """The app's sweep settings without generation timing (a fast test)."""
    config = sweeping.sweep_config(*args)
    config.cost = CostConfig(new_tokens=0)
    return config


SAME = ("label", "learning_rate", "spec_index", "metric", "trainable_parameters", "steps", "stopped_reason")
MEASURED = ("before", "after", "val_loss_after")


def test_a_sweep_in_the_worker_leaves_its_points_with_this_session(forking_spaces, files, monkeypatch):
    monkeypatch.setattr(sweep, "sweep_config", quick_config)  # the worker, forked later, has it too
    arguments = (["red"], "1e-3, 5e-2", 2, 8, MAX_LENGTH, 1, 0, False)
    here, there = new_session(files), new_session(files)
    try:
        *_, done_here = sweep.sweep(here, *arguments)
        *_, done_there = in_worker(sweep.sweep)(there, *arguments)
        points_here, points_there = here.workbench.sweep_points, there.workbench.sweep_points
        assert len(points_there) == len(points_here) == 2 and "<b>Done:</b> 2/2 points" in done_there[0]
        for point, expected in zip(points_there, points_here, strict=True):
            assert {key: point[key] for key in SAME} == {key: expected[key] for key in SAME}
            assert [point[key] for key in MEASURED] == pytest.approx([expected[key] for key in MEASURED], abs=1e-5)
            assert point["run_label"] in there.workbench.run_labels()  # each point's run, kept for this session
        assert plotted(done_there[1]) == [pytest.approx(values, abs=1e-5) for values in plotted(done_here[1])]
        restored = sweep.restore_after_failure(there)  # the finished sweep, read back as after a sweep here
        assert restored[4] == done_there[4] and list(restored[2]["best lr"]) == list(done_here[2]["best lr"])
    finally:
        here.close()
        there.close()
