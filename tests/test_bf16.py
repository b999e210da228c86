"""bfloat16 on CPU, the twin of the GPU path: the app's dtype choice, training, the run store's dtype, Compare.

(`red-explorer check --dtype bfloat16`, in test_check.py, covers training, switch-off, reload and merge of four
methods in bfloat16.)
"""

from __future__ import annotations

import copy

import pytest
import torch
from app_helpers import save_tiny_llama, tiny_app_files
from test_run_store import trained_result
from tiny_models import logits

from red_explorer.app.model_registry import ModelKey, ModelRegistry
from red_explorer.app.options import TrainOptions
from red_explorer.app.ui.handlers import model as model_handlers
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.core.registry import MethodSpec
from red_explorer.engine.generation import DecodingSettings
from red_explorer.models.loading import LoadedModel, load_model
from red_explorer.runs.store import RunStore


def test_auto_means_bfloat16_on_a_bf16_gpu_and_float32_on_cpu(monkeypatch) -> None:
    assert ModelKey(device="cpu", dtype="auto").resolved().dtype == "float32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert ModelKey(device="cuda", dtype="auto").resolved() == ModelKey(device="cuda", dtype="bfloat16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert ModelKey(device="cuda", dtype="auto").resolved().dtype == "float32"  # an older GPU


@pytest.mark.parametrize("method", ["red", "lora"])
def test_the_app_trains_keeps_and_compares_in_bfloat16(tmp_path, one_thread, method) -> None:
    folder, data = tiny_app_files(tmp_path)
    session = Session(Workbench(ModelRegistry(), RunStore(tmp_path / "runs")))
    summary, *_ = model_handlers.load_model(session, str(folder), "causal-lm", "cpu", "bfloat16")
    workbench = session.workbench
    assert "cpu · bfloat16" in summary
    assert {parameter.dtype for parameter in workbench.loaded().model.parameters()} == {torch.bfloat16}
    workbench.load_data(data, 0.1)
    run = workbench.train(MethodSpec(method), TrainOptions(max_steps=8, max_length=64, batch_size=8, eval_every=None))
    before, after = run.result.metrics_before["loss"], run.result.metrics_after["loss"]
    assert after < before and run.record.base.dtype == "bfloat16"
    with workbench.attached(run.label) as model:
        assert model.get_input_embeddings().weight.dtype == torch.bfloat16  # the base stays bf16 under the edit
    merged = workbench.export_merged_zip(run.label)  # checked against the edited model at the bf16 tolerance
    assert merged.suffix == ".zip" and merged.stat().st_size > 0
    comparison = workbench.compare("red blue", labels=[run.label], settings=DecodingSettings(max_new_tokens=6))
    assert [generation.method for generation in comparison.generations] == ["base", run.label]
    assert all(generation.new_tokens > 0 for generation in comparison.generations)


@pytest.fixture(scope="module")
def bf16_loaded(tmp_path_factory) -> LoadedModel:
    """The tiny Llama loaded as the app loads a model in bfloat16 (from_pretrained, not .to: rotary stays fp32)."""
    folder = save_tiny_llama(tmp_path_factory.mktemp("bf16") / "model")
    return load_model(str(folder), device="cpu", dtype="bfloat16")


@pytest.mark.parametrize("method", ["red", "tare", "lora", "full"])
def test_a_bfloat16_run_is_kept_as_bfloat16_and_attaches_exactly(tmp_path, bf16_loaded, method) -> None:
    result = trained_result(bf16_loaded, MethodSpec(method), seed=3)
    store = RunStore(tmp_path)
    record = store.save("alice", result, bf16_loaded, None)
    assert record.base.dtype == "bfloat16"
    model, _ = store.attach("alice", record.id, copy.deepcopy(bf16_loaded.model))
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    inputs = torch.tensor([[5, 6, 7, 8, 9, 10]])  # (B, T) word ids of the tiny tokenizer
    expected = logits(result.model, inputs)
    assert not torch.equal(expected, logits(bf16_loaded.model, inputs))  # the run changed the outputs
    assert torch.equal(logits(model, inputs), expected)
