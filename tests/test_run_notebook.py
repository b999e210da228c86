"""A kept run as a notebook: executed on a tiny model it trains the same numbers; its data is named or embedded."""

from __future__ import annotations

import json

import nbformat
import pytest
import torch
from app_helpers import save_tiny_llama, tiny_rows, write_csv
from safetensors.torch import load_file

from red_explorer import MethodSpec, load_model
from red_explorer.data.bundled import SAMPLE_FOLDER
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.experiment import train_method
from red_explorer.engine.training import TrainConfig
from red_explorer.runs.gallery import gallery_runs
from red_explorer.runs.notebook import REPRODUCED_FOLDER, run_notebook, write_run_notebook
from red_explorer.runs.record import BaseModelKey, RunRecord, data_fingerprint
from red_explorer.runs.store import RunStore

SEED = 3


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A RED run of a tiny Llama saved in a folder, trained on an uploaded CSV, kept in a run store."""
    folder = tmp_path_factory.mktemp("notebook")
    base, csv = save_tiny_llama(folder / "model"), write_csv(folder / "uploaded words.csv", tiny_rows(40, seed=5))
    loaded = load_model(str(base), device="cpu", dtype="float32")
    data = prepare_data(csv, loaded.tokenizer, DataConfig(max_length=48, seed=SEED, validation_fraction=0.2))
    config = TrainConfig(learning_rate=2e-2, max_steps=4, batch_size=8, seed=SEED, eval_every=2)
    result = train_method(loaded, data, MethodSpec("red", sites=["ffn"]), config)
    record = RunStore(folder / "runs").save("alice", result, loaded, data_fingerprint(csv, data))
    return record, csv


def _record(base_spec: str, data_name: str) -> RunRecord:
    fingerprint = data_fingerprint(SAMPLE_FOLDER / data_name)
    return RunRecord(
        id="r1",
        label="RED full (ffn)",
        owner="alice",
        created="2026-12-04T00:00:00",
        group=None,
        base=BaseModelKey(base_spec, "HuggingFaceTB/SmolLM2-135M-Instruct", "causal-lm", None, "float32"),
        spec=MethodSpec("red").to_dict(),
        train_config=TrainConfig(max_steps=9, batch_size=2, seed=7).to_dict(),
        data=fingerprint,
        loss_history=[3.0, 2.5],
        eval_history=[],
        method_bytes=1,
        files=[],
    )


def test_the_notebook_of_a_run_trains_the_same_loss_and_vectors(tiny_run, tmp_path):
    from nbclient import NotebookClient

    record, csv = tiny_run
    notebook_path = write_run_notebook(record, tmp_path / "take-home" / "run.ipynb", [csv])
    notebook = nbformat.read(notebook_path, as_version=4)
    NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(notebook_path.parent)}}).execute()

    written = notebook_path.parent / "uploaded words.csv"  # the embedded data, written next to the notebook
    assert written.read_bytes() == csv.read_bytes()
    reproduced = notebook_path.parent / REPRODUCED_FOLDER
    metrics = json.loads((reproduced / "metrics.json").read_text())
    assert len(record.loss_history) == 4
    assert metrics["train_loss"] == pytest.approx(record.loss_history, rel=1e-5)
    assert metrics["val_loss_after"] == pytest.approx(record.metrics_after["loss"], rel=1e-5)
    trained, kept = load_file(reproduced / "edits.safetensors"), load_file(record.path / "edits.safetensors")
    assert sorted(trained) == sorted(kept) and len(kept) == 4  # scale and bias of 2 layers
    assert max(float((tensor - 1).abs().max()) for name, tensor in kept.items() if name.endswith("scale")) > 1e-3
    for name, tensor in kept.items():
        torch.testing.assert_close(trained[name], tensor, rtol=1e-5, atol=1e-6)
    outputs = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "largest difference from the recorded training loss" in outputs and "PROMPT" in outputs


def test_a_run_of_the_default_model_loads_it_and_names_its_bundled_sample():
    source = "\n".join(cell.source for cell in run_notebook(_record("default", "pirate_style.jsonl")).cells)
    assert "load_model('default', task='causal-lm', dtype='float32')" in source
    assert "DATA = SAMPLE_FOLDER / 'pirate_style.jsonl'" in source and "write_bytes" not in source
    assert "MethodSpec.from_dict({'method': 'red'" in source and "'seed': 7" in source


def test_whole_numbers_in_the_settings_read_as_integers():
    record = _record("default", "pirate_style.jsonl")
    record.train_config = TrainConfig(epochs=4.0, max_steps=9, batch_size=2, learning_rate=5e-2).to_dict()
    record.data["config"] = DataConfig(max_length=64, validation_fraction=0.1).__dict__
    (cell,) = [cell.source for cell in run_notebook(record).cells if "train_config = " in cell.source]
    assert "'epochs': 4," in cell and "'max_grad_norm': 1," in cell and "4.0" not in cell
    assert "'learning_rate': 0.05," in cell and "'warmup_ratio': 0.06," in cell  # fractions stay as they are
    literal = cell.split("TrainConfig(**", 1)[1].split(")\n", 1)[0]
    assert TrainConfig(**eval(literal)) == TrainConfig(**record.train_config)  # the same settings
    source = "\n".join(cell.source for cell in run_notebook(record).cells)
    assert "'validation_fraction': 0.1," in source and "'max_length': 64," in source


def test_a_classifier_run_loads_its_head_and_shows_accuracy_instead_of_generations():
    record = _record("default", "sentiment.csv")
    record.base = BaseModelKey("default", "sentence-transformers/all-MiniLM-L6-v2", "classification", 2, "float32")
    source = "\n".join(cell.source for cell in run_notebook(record).cells)
    assert "load_model('default', task='classification', dtype='float32', num_labels=2)" in source
    assert "DATA = SAMPLE_FOLDER / 'sentiment.csv'" in source and "compare_generations([" not in source


def test_data_that_cannot_be_found_is_asked_for_beside_the_notebook():
    record = _record("default", "sentiment.csv")
    record.data |= {"name": "mine.csv", "sha256": "0" * 64}  # an upload this machine no longer has
    source = "\n".join(cell.source for cell in run_notebook(record).cells)
    assert "DATA = Path('mine.csv')  # put the run's data file next to this notebook" in source
    assert "write_bytes" not in source


def test_the_notebook_of_the_gallery_pirate_run_repeats_its_recorded_recipe():
    runs = {record.label: record for record in gallery_runs()}
    source = "\n".join(cell.source for cell in run_notebook(runs["Pirate style · RED"]).cells)
    assert "load_model('default', task='causal-lm', dtype='float32')" in source
    assert "DATA = SAMPLE_FOLDER / 'pirate_style.jsonl'" in source and "write_bytes" not in source
    data_config = "{'task': 'causal-lm', 'max_length': 64, 'validation_fraction': 0.1, 'seed': 0, 'max_rows': 100}"
    assert f"data_config = DataConfig(**{data_config})" in source and "did not record" not in source
    assert "MethodSpec.from_dict({'method': 'red', 'variant': 'full', 'sites': ['ffn']" in source
    assert "'learning_rate': 0.05" in source and "'max_steps': 9" in source and "'batch_size': 2" in source
    assert "recorded_loss = [5.448070819561298," in source
    with pytest.raises(ValueError, match="'Formal, then pirate · composed' was not trained here"):
        run_notebook(runs["Formal, then pirate · composed"])


def test_a_run_with_no_training_to_reproduce_is_refused(tmp_path):
    record = _record("default", "pirate_style.jsonl")
    record.stopped_reason = "imported"
    with pytest.raises(ValueError, match="not trained here"):
        run_notebook(record)
    with pytest.raises(ValueError, match="must end in .ipynb"):
        write_run_notebook(_record("default", "pirate_style.jsonl"), tmp_path / "run.txt")


def test_the_export_tab_downloads_a_notebook_with_the_sessions_upload_inside(files):
    from app_helpers import QUICK, new_session

    from red_explorer.app.ui.handlers import export

    session = new_session(files)
    run = session.workbench.train(MethodSpec("red"), QUICK)
    path, status = export.export_notebook(session, run.label)
    source = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
    assert path.endswith(".ipynb") and f"Notebook of {run.label}" in status
    assert f"load_model({str(files[0])!r}, task='causal-lm', dtype='float32')" in source
    assert "DATA = Path('words.csv')  # the run's data, embedded here" in source
    assert repr(files[1].read_bytes().decode()) in source and "'max_length': 64" in source
