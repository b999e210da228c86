"""The run store: runs kept as small files per owner, surviving restarts, atomic, quota-bound, exportable."""

from __future__ import annotations

import copy
import hashlib
import json
import multiprocessing
import threading
import time
import zipfile

import pytest
import torch
from filelock import FileLock
from store_workers import import_runs
from tiny_models import logits, sample_inputs, tiny_model, tiny_tokenizer

from red_explorer.cli.runs import store_for
from red_explorer.core.archive import safe_extract
from red_explorer.core.registry import MethodSpec, apply_method, load_edits
from red_explorer.engine.experiment import RunResult
from red_explorer.engine.training import TrainConfig
from red_explorer.models.loading import LoadedModel
from red_explorer.runs.disk_room import DiskFullError, free_bytes, reserve_bytes
from red_explorer.runs.home import default_home
from red_explorer.runs.record import data_fingerprint
from red_explorer.runs.store import QuotaError, RunNotFoundError, RunStore, folder_bytes

SAMPLE = "red_explorer/samples/restaurants_e2e.csv"


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    tokenizer = tiny_tokenizer(["red blue green cat dog"] * 4, chat=False)
    return LoadedModel(tiny_model("llama"), tokenizer, "tiny-llama", "causal-lm", torch.device("cpu"), torch.float32)


def trained_result(loaded: LoadedModel, spec: MethodSpec, seed: int = 0, learning_rate: float = 1e-2) -> RunResult:
    """A run as training leaves it: ``spec`` on a copy of the base, its trainable tensors moved off the identity."""
    model = apply_method(copy.deepcopy(loaded.model), spec, "causal-lm")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return RunResult(
        spec=spec,
        train_config=TrainConfig(learning_rate=learning_rate, max_steps=3),
        metrics_before={"loss": 4.6},
        metrics_after={"loss": 4.2},
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        train_seconds=0.5,
        peak_memory_bytes=0,
        tokens_per_second=100.0,
        train_loss=[4.6, 4.4, 4.2],
        eval_history=[{"step": 3, "loss": 4.2}],
        stopped_reason="completed",
        model=model.eval(),
    )


@pytest.fixture(scope="module")
def red_result(loaded) -> RunResult:
    return trained_result(loaded, MethodSpec("red"))


def test_25_runs_survive_a_restart_and_stay_with_their_owner(tmp_path, loaded, red_result):
    store = RunStore(tmp_path)
    saved = [store.save("alice", red_result, loaded, None) for _ in range(25)]
    reopened = RunStore(tmp_path)  # a server restart: a new store on the same root
    listed = reopened.list("alice")
    assert [run.id for run in listed] == [run.id for run in saved]  # oldest first
    assert len({run.label for run in listed}) == 25
    assert listed[0].label == "RED full (ffn)" and listed[1].label == "RED full (ffn) #2"
    assert reopened.list("bob") == [] and RunStore(tmp_path).usage_bytes("bob") == 0
    assert reopened.get("alice", saved[7].id).to_dict() == saved[7].to_dict()


def test_the_record_holds_base_spec_training_data_and_histories(tmp_path, loaded, red_result):
    fingerprint = data_fingerprint(SAMPLE)
    record = RunStore(tmp_path).save("alice", red_result, loaded, fingerprint, group="ablation-1")
    stored = json.loads((record.path / "run.json").read_text())
    assert stored["base"] == {
        "spec": "tiny-llama",
        "base_name": "tiny-llama",
        "task": "causal-lm",
        "num_labels": None,
        "dtype": "float32",
        "quantize": None,
    }
    assert stored["spec"] == MethodSpec("red").to_dict() and stored["group"] == "ablation-1"
    assert stored["train_config"]["learning_rate"] == 1e-2 and stored["loss_history"] == [4.6, 4.4, 4.2]
    with open(SAMPLE, "rb") as handle:
        assert stored["data"]["sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert stored["data"]["name"] == "restaurants_e2e.csv"
    assert stored["files"] == ["edits.safetensors", "red_config.json"]
    assert stored["method_bytes"] == sum((record.path / name).stat().st_size for name in stored["files"])
    assert json.loads((record.path / "metrics.json").read_text())["val_loss_after"] == 4.2


@pytest.mark.parametrize("method", ["red", "tare", "lora", "full"])
def test_an_attached_run_gives_the_trained_logits(tmp_path, loaded, method):
    result = trained_result(loaded, MethodSpec(method), seed=3)
    store = RunStore(tmp_path)
    record = store.save("alice", result, loaded, None)
    base = copy.deepcopy(loaded.model)
    model, spec = store.attach("alice", record.id, base)
    expected = logits(result.model, sample_inputs())
    assert spec == MethodSpec(method)
    assert not torch.allclose(expected, logits(loaded.model, sample_inputs()), atol=1e-4)  # the run changed it
    assert torch.allclose(logits(model, sample_inputs()), expected, atol=1e-5)


def test_an_interrupted_write_is_never_listed(tmp_path, loaded, red_result):
    store = RunStore(tmp_path)
    kept = store.save("alice", red_result, loaded, None)
    owner = tmp_path / "alice"
    no_record = owner / "20250101-000000-123456"
    no_record.mkdir()
    (no_record / "red_config.json").write_text("{}")
    broken = owner / "20250101-000001-654321"
    broken.mkdir()
    (broken / "run.json").write_text('{"id": "20250101-000001-654321", "lab')
    assert [run.id for run in store.list("alice")] == [kept.id]
    assert store.usage_bytes("alice") == sum(path.stat().st_size for path in kept.path.iterdir())
    with pytest.raises(RunNotFoundError):
        store.get("alice", no_record.name)
    store.save("alice", red_result, loaded, None)
    assert no_record.is_dir() and broken.is_dir()  # not the store's leftovers: kept for the user to look at


def test_opening_the_store_removes_crash_leftovers_but_not_a_live_write(tmp_path, loaded, red_result):
    kept = RunStore(tmp_path).save("alice", red_result, loaded, None)
    owner = tmp_path / "alice"
    leftovers = [owner / ".deleting-20250101-000000-abcdef-123abc", owner / ".incoming-20250101-000000-fedcba"]
    live = owner / ".incoming-20250101-000002-aaaaaa"
    for folder in [*leftovers, live]:
        folder.mkdir()
        (folder / "edits.safetensors").write_bytes(b"x" * 1000)
    (owner / ".incoming-20250101-000003-bbbbbb.lock").write_text("")  # a writer that crashed before its folder
    writer = FileLock(str(owner / f"{live.name}.lock"))
    with writer:  # another process is writing this one now
        RunStore(tmp_path)
        assert live.is_dir() and (owner / f"{live.name}.lock").exists()
        assert sorted(path.name for path in owner.iterdir()) == sorted([kept.id, live.name, f"{live.name}.lock"])
    RunStore(tmp_path)  # its writer ended without renaming it: a leftover too
    assert [path.name for path in owner.iterdir()] == [kept.id]


def test_quota_refusal_names_the_usage_and_keeps_every_run(tmp_path, loaded, red_result):
    probe = RunStore(tmp_path / "probe").save("alice", red_result, loaded, None)
    size = sum(path.stat().st_size for path in probe.path.iterdir())
    store = RunStore(tmp_path / "store", quota_bytes=2 * size + size // 2)
    first, second = (store.save("alice", red_result, loaded, None) for _ in range(2))
    with pytest.raises(QuotaError, match="quota") as refusal:
        store.save("alice", red_result, loaded, None)
    message = str(refusal.value)
    assert "nothing was deleted" in message and "Delete runs" in message and first.id in message
    assert [run.id for run in store.list("alice")] == [first.id, second.id]
    assert sorted(path.name for path in (tmp_path / "store" / "alice").iterdir()) == sorted([first.id, second.id])
    assert store.save("bob", red_result, loaded, None).owner == "bob"  # the quota is per owner
    with pytest.raises(ValueError, match="quota_bytes"):
        RunStore(tmp_path, quota_bytes=0)


def test_rename_persists_and_refuses_a_taken_label(tmp_path, loaded, red_result):
    store = RunStore(tmp_path)
    first, second = (store.save("alice", red_result, loaded, None) for _ in range(2))
    store.rename("alice", first.id, "  my   best run ")
    assert RunStore(tmp_path).get("alice", first.id).label == "my best run"
    with pytest.raises(ValueError, match="is called 'my best run'"):
        store.rename("alice", second.id, "my best run")
    with pytest.raises(ValueError, match="1 to 120 characters"):
        store.rename("alice", second.id, "   ")
    assert store.find("alice", "my best run").id == first.id
    assert store.find("alice", second.id[:-2]).id == second.id  # a prefix only it has
    third = store.save("alice", red_result, loaded, None, label="my best run")
    assert third.label == "my best run #2"  # a chosen label never collides


def test_delete_removes_that_run_only(tmp_path, loaded, red_result):
    store = RunStore(tmp_path)
    runs = [store.save("alice", red_result, loaded, None) for _ in range(3)]
    other = store.save("bob", red_result, loaded, None)
    assert store.delete("alice", runs[1].id).id == runs[1].id
    assert [run.id for run in store.list("alice")] == [runs[0].id, runs[2].id]
    assert not runs[1].path.exists() and store.list("bob") == [other]
    with pytest.raises(RunNotFoundError, match="no run"):
        store.delete("alice", runs[1].id)
    with pytest.raises(RunNotFoundError):
        store.get("bob", runs[0].id)  # another owner's run is not found under this owner


def test_export_zip_passes_safe_extract_and_loads_back(tmp_path, loaded, red_result):
    store = RunStore(tmp_path / "store")
    record = store.save("alice", red_result, loaded, None)
    archive = store.export_zip("alice", record.id, tmp_path / "exports")
    with zipfile.ZipFile(archive) as bundle:
        assert sorted(bundle.namelist()) == ["edits.safetensors", "metrics.json", "red_config.json"]
    folder = safe_extract(archive, tmp_path / "unpacked")
    model = copy.deepcopy(loaded.model)
    load_edits(model, folder)
    assert torch.allclose(logits(model, sample_inputs()), logits(red_result.model, sample_inputs()), atol=1e-6)
    full = store.save("alice", trained_result(loaded, MethodSpec("full")), loaded, None)
    with pytest.raises(ValueError, match="full fine-tuning checkpoint"):
        store.export_zip("alice", full.id, tmp_path / "exports")


@pytest.mark.parametrize("owner", ["", ".", "..", ".incoming-x", "a/b", "../etc", "a b", "x" * 65, "é", None])
def test_unsafe_owner_keys_are_refused(tmp_path, loaded, red_result, owner):
    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match="owner key"):
        store.list(owner)
    with pytest.raises(ValueError, match="owner key"):
        store.save(owner, red_result, loaded, None)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_saves_keep_every_run_with_distinct_labels(tmp_path, loaded, red_result):
    store = RunStore(tmp_path)
    threads = [threading.Thread(target=store.save, args=("alice", red_result, loaded, None)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = RunStore(tmp_path).list("alice")
    assert len(runs) == 6 and len({run.label for run in runs}) == 6 and len({run.id for run in runs}) == 6


def test_labels_tell_runs_apart_by_learning_rate(tmp_path, loaded):
    store = RunStore(tmp_path)
    slow = store.save("alice", trained_result(loaded, MethodSpec("red"), learning_rate=1e-2), loaded, None)
    fast = store.save("alice", trained_result(loaded, MethodSpec("red"), learning_rate=3e-2), loaded, None)
    lora = store.save("alice", trained_result(loaded, MethodSpec("lora")), loaded, None)
    assert (slow.label, fast.label, lora.label) == ("RED full (ffn)", "RED full (ffn) · lr 3e-2", "LoRA r=8")


def test_a_home_with_a_tilde_is_under_the_user_home(tmp_path, monkeypatch, loaded, red_result):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RED_EXPLORER_HOME", "~/x")
    assert default_home() == tmp_path / "user" / "x"
    record = RunStore(default_home() / "runs").save("alice", red_result, loaded, None)
    assert record.path.parent == tmp_path / "user" / "x" / "runs" / "alice"
    assert RunStore("~/y").root == tmp_path / "user" / "y"
    assert store_for("~/z").root == tmp_path / "user" / "z" / "runs"
    assert not (tmp_path / "~").exists()


def _saved_edits(tmp_path, loaded, red_result):
    """The files of one kept run, as a folder that ``import_edits`` copies."""
    record = RunStore(tmp_path / "source").save("alice", red_result, loaded, None)
    return record.path, folder_bytes(record.path)


def _save_from_processes(pool, manager, root, folder, each: int, quota_bytes=None, processes: int = 3) -> list[str]:
    """Every process of ``pool`` keeps ``each`` runs in ``root``, all starting at once."""
    start = manager.Event()
    arguments = (str(root), str(folder), each, quota_bytes, start)
    jobs = [pool.apply_async(import_runs, arguments) for _ in range(processes)]
    time.sleep(0.5)
    start.set()
    return [outcome for job in jobs for outcome in job.get(timeout=120)]


def test_saves_from_several_processes_get_distinct_labels_and_respect_the_quota(tmp_path, loaded, red_result):
    folder, run_bytes = _saved_edits(tmp_path, loaded, red_result)
    quota = 4 * run_bytes + run_bytes // 2  # room for 4 runs
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(3) as pool:
        labels = _save_from_processes(pool, manager, tmp_path / "shared", folder, each=6)
        outcomes = _save_from_processes(pool, manager, tmp_path / "full", folder, each=2, quota_bytes=quota)
    assert len(labels) == 18 and len(set(labels)) == 18
    assert sorted(run.label for run in RunStore(tmp_path / "shared").list("alice")) == sorted(labels)
    assert sorted(outcomes).count("quota") == 2
    full = RunStore(tmp_path / "full", quota_bytes=quota)
    assert len(full.list("alice")) == 4 and full.usage_bytes("alice") <= quota


def test_a_save_that_would_leave_the_disk_under_its_reserve_is_refused_and_keeps_every_run(
    tmp_path, loaded, red_result, monkeypatch
):
    store = RunStore(tmp_path)
    first = store.save("alice", red_result, loaded, None)
    free = free_bytes(tmp_path)
    monkeypatch.setenv("RED_EXPLORER_MIN_FREE_MB", str(free / 1_000_000 + 1))  # 1 MB more than the disk has free
    with pytest.raises(DiskFullError, match="must stay free for the app; nothing was deleted") as refusal:
        store.save("alice", red_result, loaded, None)
    assert "Delete runs you no longer need" in str(refusal.value) and "and save again" in str(refusal.value)
    assert [path.name for path in (tmp_path / "alice").iterdir()] == [first.id]  # no half-written folder left
    with pytest.raises(DiskFullError, match=r"training this run would keep about 2\.0 kB, but the disk"):
        store.check_room("alice", 2_000)
    monkeypatch.setenv("RED_EXPLORER_MIN_FREE_MB", "0")
    assert store.save("alice", red_result, loaded, None).label != first.label


def test_the_reserve_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("RED_EXPLORER_MIN_FREE_MB", raising=False)
    assert reserve_bytes() == 200_000_000
    monkeypatch.setenv("RED_EXPLORER_MIN_FREE_MB", "1.5")
    assert reserve_bytes() == 1_500_000
    monkeypatch.setenv("RED_EXPLORER_MIN_FREE_MB", "lots")
    with pytest.raises(ValueError, match="RED_EXPLORER_MIN_FREE_MB must be a number of megabytes, got 'lots'"):
        reserve_bytes()
