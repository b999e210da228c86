"""`red-explorer train` keeps its run in the store; `red-explorer runs list|show|rm|export` work on it."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from tiny_models import logits, sample_inputs, save_tiny_causal_lm

from red_explorer.cli.main import main
from red_explorer.core.archive import safe_extract
from red_explorer.core.registry import load_edits
from red_explorer.models.loading import load_model
from red_explorer.runs.store import RunStore

SAMPLE = "red_explorer/samples/restaurants_e2e.csv"


def cli(*args) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit:  # --help and argument errors
            code = exit.code or 0
    return code, stdout.getvalue(), stderr.getvalue()


def train(model_dir, out, learning_rate) -> dict:
    code, stdout, stderr = cli(
        "train", "--model", model_dir, "--data", SAMPLE, "--max-rows", 24, "--max-steps", 2, "--lr", learning_rate,
        "--out", out,
    )  # fmt: skip
    assert code == 0, stderr[-2000:]
    return json.loads(stdout[stdout.index("{") :])


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RED_EXPLORER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")


def test_train_keeps_its_run_and_runs_lists_shows_exports_and_deletes_it(home, model_dir, tmp_path):
    first = train(model_dir, tmp_path / "out1", 1e-2)
    second = train(model_dir, tmp_path / "out2", 3e-2)
    assert (tmp_path / "out1" / "edits.safetensors").is_file()  # --out still writes the folder
    runs = RunStore(home / "runs").list("local")
    assert [run.id for run in runs] == [first["run_id"], second["run_id"]]
    assert [run.label for run in runs] == ["RED full (ffn)", "RED full (ffn) · lr 3e-2"]
    assert runs[0].data["name"] == "restaurants_e2e.csv" and sum(runs[0].data["rows"].values()) == 24

    code, listing, _ = cli("runs", "list")
    assert code == 0 and first["run_id"] in listing and "RED full (ffn) · lr 3e-2" in listing
    code, shown, _ = cli("runs", "show", first["run_id"][:-1])  # a prefix only it has
    record = json.loads(shown)
    assert record["id"] == first["run_id"] and record["spec"]["method"] == "red" and len(record["loss_history"]) == 2

    code, exported, _ = cli("runs", "export", "RED full (ffn) · lr 3e-2", "--out", tmp_path / "zips")
    folder = safe_extract(Path(exported.strip()), tmp_path / "unpacked")
    edited = load_model(str(model_dir), device="cpu").model
    load_edits(edited, folder)
    reference = load_model(str(model_dir), device="cpu").model
    load_edits(reference, tmp_path / "out2")
    assert (logits(edited, sample_inputs()) - logits(reference, sample_inputs())).abs().max() == 0

    code, removed, _ = cli("runs", "rm", first["run_id"])
    assert code == 0 and first["run_id"] in removed
    code, listed, _ = cli("runs", "list", "--json")
    assert [run["id"] for run in json.loads(listed)] == [second["run_id"]]


def test_home_option_and_empty_store(home, tmp_path):
    code, stdout, _ = cli("runs", "list", "--home", tmp_path / "elsewhere")
    assert code == 0 and "no runs" in stdout
    code, _, stderr = cli("runs", "show", "nothing-here")
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "no run 'nothing-here'" in errors[0]


@pytest.mark.parametrize("action", ["list", "show", "rm", "export"])
def test_every_runs_action_has_help(action):
    code, stdout, _ = cli("runs", action, "--help")
    assert code == 0 and "--home" in stdout


def test_runs_notebook_writes_a_notebook_that_retrains_the_run_on_its_sample(home, model_dir, tmp_path):
    import nbformat

    trained = train(model_dir, tmp_path / "out", 1e-2)
    code, written, stderr = cli("runs", "notebook", trained["run_id"], "--out", tmp_path / "take-home" / "run.ipynb")
    assert code == 0, stderr[-2000:]
    source = "\n".join(cell.source for cell in nbformat.read(written.strip(), as_version=4).cells)
    assert f"load_model({str(model_dir)!r}, task='causal-lm', dtype='float32')" in source
    assert "DATA = SAMPLE_FOLDER / 'restaurants_e2e.csv'" in source and "'max_rows': 24" in source
    assert "'learning_rate': 0.01" in source and "'max_steps': 2" in source
    code, _, stderr = cli("runs", "notebook", trained["run_id"], "--out", tmp_path / "run.txt")
    assert code != 0 and "must end in .ipynb" in stderr
