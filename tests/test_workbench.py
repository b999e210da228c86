"""The workbench: a shared read-only base model, private sessions, safe zip import, exact export round trips."""

import copy
import gc
import os
import pickle
import shutil
import threading
import time
import weakref
import zipfile
from pathlib import Path

import pytest
import torch
from app_helpers import save_tiny_llama, tiny_rows, write_csv
from tiny_models import logits, sample_inputs
from transformers import AutoModelForCausalLM

from red_explorer.app.model_registry import ModelKey, ModelRegistry
from red_explorer.app.options import TrainOptions
from red_explorer.app.workbench import Workbench
from red_explorer.core.archive import MAX_MEMBERS, safe_extract
from red_explorer.core.checkpoint import EditsFileError
from red_explorer.core.method import MergeError
from red_explorer.core.registry import MethodSpec, apply_method

OPTIONS = TrainOptions(max_steps=3, max_length=64, batch_size=8, eval_every=None)
INPUTS = sample_inputs(batch=2, length=8)
COMPARED_METHODS = {
    "RED (FFN)": MethodSpec("red"),
    "RED (FFN + attention)": MethodSpec("red", sites=["ffn", "attn"]),
    "TARE (E=4, k=2)": MethodSpec("tare"),
    "LoRA (r=8)": MethodSpec("lora"),
    "Full fine-tuning": MethodSpec("full"),
}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("data") / "words.csv", tiny_rows(40))


@pytest.fixture(scope="module")
def registry():
    return ModelRegistry()


def open_bench(registry, model_folder, data_file, **options) -> Workbench:
    bench = Workbench(registry, **options)
    bench.load_model(str(model_folder))
    bench.load_data(data_file)
    return bench


@pytest.fixture(scope="module")
def trained(registry, model_folder, data_file):
    """A workbench holding one trained RED run (shared by the read-only tests)."""
    bench = open_bench(registry, model_folder, data_file)
    run = bench.train(MethodSpec("red"), OPTIONS)
    yield bench, run
    bench.close()


def applied_logits(bench: Workbench, label: str) -> torch.Tensor:
    """The logits of the shared base with the kept run applied (attached for this call only)."""
    with bench.attached(label) as model:
        return logits(model, INPUTS)


# ---------------------------------------------------------------- the shared registry


def test_registry_loads_once_for_concurrent_requests():
    calls = []

    def slow_loader(*args):
        calls.append(args)
        time.sleep(0.2)
        return object()

    registry = ModelRegistry(loader=slow_loader)
    results = []
    threads = [threading.Thread(target=lambda: results.append(registry.get(ModelKey("x")))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len({id(result) for result in results}) == 1
    assert calls[0] == ("x", "causal-lm", None, "cpu", "float32")  # "auto" resolved on this CPU machine


def test_registry_status_reports_loading_failure_and_retry():
    release, attempts = threading.Event(), []

    def loader(*args):
        attempts.append(args)
        release.wait(5)
        if len(attempts) == 1:
            raise ValueError("no such model")
        return "model"

    registry = ModelRegistry(loader=loader)
    key = ModelKey("m")
    assert registry.status(key) == "not loaded"
    thread = registry.preload(key)
    deadline = time.time() + 5
    while registry.status(key) != "loading" and time.time() < deadline:
        time.sleep(0.01)
    assert registry.status(key) == "loading"
    release.set()
    thread.join(5)
    assert registry.status(key) == "failed: no such model"
    assert registry.get(key) == "model" and registry.status(key) == "ready"  # a failed load is retried


def test_registry_drops_the_least_recently_used_model():
    registry = ModelRegistry(capacity=1, loader=lambda spec, *rest: spec)
    registry.get(ModelKey("a"))
    registry.get(ModelKey("b"))
    assert registry.status(ModelKey("a")) == "not loaded" and registry.status(ModelKey("b")) == "ready"


# ---------------------------------------------------------------- model and data


def test_model_info_counts_equal_the_methods_applied(registry, model_folder):
    bench = Workbench(registry)
    info = bench.load_model(str(model_folder))
    assert (info.num_layers, info.hidden_size, info.intermediate_size) == (2, 32, 64)
    assert info.ffn_module == "model.layers.0.mlp.down_proj" and info.family == "llama"
    base = bench.loaded().model
    for label, spec in COMPARED_METHODS.items():
        trained = apply_method(copy.deepcopy(base), spec, "causal-lm")
        expected = sum(p.numel() for p in trained.parameters() if p.requires_grad)
        assert info.parameter_counts[label] == expected, label
    assert info.parameter_counts["RED (FFN)"] == 2 * 32 * 2


def test_data_summary_preview_and_lengths(registry, model_folder, data_file):
    bench = open_bench(registry, model_folder, data_file)
    detected = bench.data.detected
    assert (detected.kind, detected.num_train, detected.num_validation) == ("prompt/response", 36, 4)
    preview = bench.data.preview(3)
    assert len(preview) == 3 and set(preview[0]) == {"prompt", "response"}
    lengths = bench.data.lengths()
    assert len(lengths["train"]) == 36 and all(length > 5 for length in lengths["train"])
    assert bench.prepared(64).tokenized["train"].num_rows == 36


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"colour,size\nred,3\nblue,4\ngreen,5\nred,6\n", "column"),
        (b"\x00\x01\x02garbage\xff\xfe", "binary file"),
        (b"prompt,response\nhi,there\n", "too few"),
    ],
)
def test_bad_uploads_say_what_is_wrong_and_the_bench_keeps_working(
    registry, model_folder, data_file, tmp_path, content, message
):
    bench = open_bench(registry, model_folder, data_file)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=message) as raised:
        bench.load_data(bad)
    assert str(raised.value) and "Traceback" not in str(raised.value)
    assert bench.data.name == "words.csv"  # the previous data is still there
    assert bench.load_data(data_file).detected.num_train == 36


# ---------------------------------------------------------------- isolation


def test_two_workbenches_share_the_base_model_but_not_their_runs(registry, model_folder, data_file):
    first, second = open_bench(registry, model_folder, data_file), open_bench(registry, model_folder, data_file)
    assert first.loaded() is second.loaded()  # one read-only copy in memory
    base_logits = logits(first.loaded().model, INPUTS)
    run = first.train(MethodSpec("red"), OPTIONS)
    assert first.run_labels() == ["RED full (ffn)"] and second.run_labels() == []
    with pytest.raises(ValueError, match="no run called"):
        second.run(run.label)
    with pytest.raises(ValueError, match="no run called"):
        second.export_edits_zip(run.label)
    assert torch.equal(logits(second.loaded().model, INPUTS), base_logits)  # training never touched the base
    assert not torch.equal(applied_logits(first, run.label), base_logits)
    assert torch.equal(logits(second.loaded().model, INPUTS), base_logits)  # applying a run leaves no trace
    first.stop()
    assert not second.stop_event.is_set()  # stopping is per session


def test_runs_are_never_capped_and_close_keeps_them_on_disk(registry, model_folder, data_file):
    bench = open_bench(registry, model_folder, data_file)
    quick = TrainOptions(max_steps=1, max_length=64, eval_every=None)
    for spec in (MethodSpec("red"), MethodSpec("red", variant="bias"), MethodSpec("lora"), MethodSpec("red")):
        bench.train(spec, quick)
    labels = bench.run_labels()
    assert len(labels) == 4 and labels[:3] == ["RED full (ffn)", "RED bias (ffn)", "LoRA r=8"]
    assert labels[3] != labels[0] and labels[3].startswith("RED full (ffn)")  # told apart, not replaced
    folder = bench.folder()
    bench.close()
    assert bench.data is None and not folder.exists() and bench.stop_event.is_set()
    assert list(bench.runs) == labels  # kept in the run store, not in the session


def test_stop_ends_training_after_the_current_step(registry, model_folder, data_file):
    bench = open_bench(registry, model_folder, data_file)
    bench.stop()
    run = bench.train(MethodSpec("red"), TrainOptions(max_steps=5, max_length=64, eval_every=None))
    assert run.result.stopped_reason == "stopped by user" and len(run.result.train_loss) == 1
    bench.new_job()
    assert not bench.stop_event.is_set()


def test_a_new_model_drops_runs_and_rereads_the_data(registry, model_folder, data_file, tmp_path):
    bench = open_bench(registry, model_folder, data_file)
    bench.train(MethodSpec("red"), TrainOptions(max_steps=1, max_length=64))
    other = save_tiny_llama(tmp_path / "other", seed=1)
    info = bench.load_model(str(other))
    assert bench.run_labels() == [] and any("stay kept" in note for note in info.notes)
    assert bench.data is not None and bench.data.detected.num_train == 36
    with pytest.raises(ValueError, match="does not exist"):
        bench.load_model(str(tmp_path / "missing"))
    assert bench.key.spec == str(other)  # a failed load keeps the previous model
    bench.load_model(str(model_folder))
    assert bench.run_labels() == ["RED full (ffn)"]  # the first model's run is listed again
    info = bench.load_model(str(model_folder), task="classification")  # with prompt/response data loaded
    assert bench.data is None and any("was unloaded" in note for note in info.notes)


# ---------------------------------------------------------------- training, ablation, generation


def test_training_records_metrics_and_lowers_the_training_loss(trained):
    bench, run = trained
    result = run.result
    assert result.trainable_parameters == 2 * 32 * 2 and len(result.train_loss) == 3
    assert set(result.metrics_before) == {"loss", "perplexity"} and result.metrics_after["loss"] > 0
    assert bench.summary_rows()[0]["trainable_parameters"] == 128


def test_ablation_returns_one_row_per_spec_with_progress(registry, model_folder, data_file):
    bench = open_bench(registry, model_folder, data_file)
    seen, finished = [], []
    specs = [MethodSpec("red", variant="bias"), MethodSpec("lora")]
    quick = TrainOptions(max_steps=2, max_length=64)
    rows = bench.ablate(specs, quick, on_progress=lambda i, n, e: seen.append((i, n)), on_row=finished.append)
    assert [row["label"] for row in rows] == ["RED bias (ffn)", "LoRA r=8"] and finished == rows
    assert rows[0]["trainable_parameters"] == 64 and rows[1]["trainable_parameters"] > 64
    assert (0, 2) in seen and (1, 2) in seen and bench.ablation_rows == rows
    kept = list(bench.runs.values())
    assert [run.label for run in kept] == ["RED bias (ffn)", "LoRA r=8"]  # every ablation row is a kept run
    assert kept[0].group == kept[1].group and kept[0].group.startswith("ablation")


def test_compare_uses_the_validation_reference(trained):
    bench, run = trained
    comparison = bench.compare(example_index=1)
    formatted, reference, generations = comparison.prompt, comparison.reference, comparison.generations
    expected_prompt, expected_reference = bench.validation_examples()[1]
    assert formatted == expected_prompt and reference == expected_reference
    assert [generation.method for generation in generations] == ["base", run.label]
    assert all(generation.rouge_l is not None and generation.seconds > 0 for generation in generations)
    with pytest.raises(ValueError, match="does not exist"):
        bench.compare(example_index=99)
    with pytest.raises(ValueError, match="type a prompt"):
        bench.compare("  ")


# ---------------------------------------------------------------- files


def test_export_then_import_gives_the_same_logits(trained, registry):
    bench, run = trained
    archive = bench.export_edits_zip(run.label)
    assert set(zipfile.ZipFile(archive).namelist()) >= {"red_config.json", "edits.safetensors"}
    other = Workbench(registry)
    other.load_model(bench.key.spec)
    imported = other.import_edits_zip(archive)
    assert imported.label == "RED full (ffn) (imported)" and other.run_labels() == [imported.label]
    expected = applied_logits(bench, run.label)
    torch.testing.assert_close(applied_logits(other, imported.label), expected, rtol=0, atol=0)


def test_merged_export_is_a_plain_checkpoint_with_the_same_logits(trained, tmp_path):
    bench, run = trained
    archive = bench.export_merged_zip(run.label)
    zipfile.ZipFile(archive).extractall(tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(logits(merged, INPUTS), applied_logits(bench, run.label), rtol=1e-4, atol=1e-4)


def test_tare_cannot_be_merged_but_exports_its_edits(registry, model_folder, data_file):
    bench = open_bench(registry, model_folder, data_file)
    run = bench.train(MethodSpec("tare"), TrainOptions(max_steps=1, max_length=64))
    with pytest.raises(MergeError, match="TARE edits cannot be merged"):
        bench.export_merged_zip(run.label)
    assert "red_config.json" in zipfile.ZipFile(bench.export_edits_zip(run.label)).namelist()


def test_the_snippet_applies_the_downloaded_edits(trained, tmp_path, monkeypatch):
    bench, run = trained
    archive = bench.export_edits_zip(run.label)
    shutil.copy(archive, tmp_path / archive.name)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(bench.python_snippet(run.label, archive.name), namespace)  # noqa: S102 - our own generated code
    expected = applied_logits(bench, run.label)
    torch.testing.assert_close(logits(namespace["model"], INPUTS), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(logits(namespace["plain"].eval(), INPUTS), expected, rtol=1e-5, atol=1e-5)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, content in members.items():
            bundle.writestr(name, content)
    return path


def test_zip_slip_and_absolute_paths_are_refused(tmp_path):
    target = tmp_path / "out"
    for name in ("../evil.txt", "edits/../../evil.txt", "/tmp/evil.safetensors", "..\\evil.json"):
        with pytest.raises(EditsFileError, match="unsafe path"):
            safe_extract(make_zip(tmp_path / "bad.zip", {name: b"x", "red_config.json": b"{}"}), target)
    assert not (tmp_path / "evil.txt").exists() and not list(target.iterdir())


def test_unknown_files_symlinks_and_non_zips_are_refused(tmp_path):
    with pytest.raises(EditsFileError, match="not part of an edits folder"):
        safe_extract(make_zip(tmp_path / "a.zip", {"adapter_model.bin": pickle.dumps({"w": 1})}), tmp_path / "a")
    link = zipfile.ZipInfo("red_config.json")
    link.external_attr = 0o120777 << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as bundle:
        bundle.writestr(link, "/etc/passwd")
    with pytest.raises(EditsFileError, match="symbolic link"):
        safe_extract(tmp_path / "link.zip", tmp_path / "b")
    (tmp_path / "c.zip").write_bytes(b"not a zip at all")
    with pytest.raises(EditsFileError, match="not a zip"):
        safe_extract(tmp_path / "c.zip", tmp_path / "c")
    many = {f"folder{i}/README.md": b"" for i in range(MAX_MEMBERS + 1)}
    with pytest.raises(EditsFileError, match="at most"):
        safe_extract(make_zip(tmp_path / "d.zip", many), tmp_path / "d")


def test_a_pickle_renamed_to_safetensors_is_never_unpickled(trained, tmp_path):
    bench, run = trained
    good = zipfile.ZipFile(bench.export_edits_zip(run.label))
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    members = {"red_config.json": good.read("red_config.json"), "edits.safetensors": pickle.dumps(Exploit())}
    archive = make_zip(tmp_path / "evil.zip", members)
    with pytest.raises(EditsFileError, match="not a safetensors file"):
        bench.import_edits_zip(archive)
    assert not marker.exists() and bench.run_labels() == [run.label]


def test_max_steps_extends_past_the_epochs():
    from red_explorer.engine.training import TrainConfig, count_steps

    batches_per_epoch = 5
    steps = TrainOptions(max_steps=12, epochs=1.0).loop_options()
    assert count_steps(batches_per_epoch, TrainConfig(**steps)) == 12  # the data repeats: 2.4 epochs
    whole_epochs = TrainOptions(max_steps=None, epochs=2.0).loop_options()
    assert count_steps(batches_per_epoch, TrainConfig(**whole_epochs)) == 10


def test_close_frees_the_sessions_data_even_where_a_reference_stays(registry, model_folder, data_file):
    bench = open_bench(registry, model_folder, data_file)
    bench.prepared(64)
    state = bench.data  # e.g. a page's state that still refers to it
    tables = [weakref.ref(state.probe.tokenized), weakref.ref(state.prepared[64].tokenized)]
    bench.close()
    gc.collect()
    assert bench.data is None and state.probe is None and state.prepared == {}
    assert [table() for table in tables] == [None, None]
