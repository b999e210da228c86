"""Hub kernels stay off unless asked for: every path that loads a model passes ``use_kernels`` explicitly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from app_helpers import save_tiny_llama
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from red_explorer.cli.main import main
from red_explorer.models import loading
from red_explorer.models.loading import CACHE_SUBFOLDER, HUB_KERNELS_ENV, hub_kernels_wanted, load_model

HUB_ID = "someone/tiny-llama"  # a hub id the spies below serve from the tiny folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("kernels") / "model")


@pytest.fixture
def spy(monkeypatch, folder):
    """The keyword arguments of every model from_pretrained call; a hub id is answered from the tiny folder."""
    calls: list[dict] = []
    for name in (HUB_KERNELS_ENV, "USE_HUB_KERNELS"):  # set, then removed: restored after the test either way
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)

    def wrap(cls, record: bool):
        original = cls.from_pretrained.__func__

        def from_pretrained(klass, source, *args, **kwargs):
            if record:
                calls.append(kwargs)
            return original(klass, str(folder) if source == HUB_ID else source, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(from_pretrained))

    for cls in (AutoModelForCausalLM, AutoModelForSequenceClassification):
        wrap(cls, record=True)
    for cls in (AutoConfig, AutoTokenizer):
        wrap(cls, record=False)
    return calls


@pytest.mark.parametrize(
    ("how", "task"),
    [("folder", "causal-lm"), ("folder", "classification"), ("hub id", "causal-lm"), ("hub id", "classification")]
    + [("default", "causal-lm")],  # the default classifier (MiniLM) is a package folder, as in the folder case
)
def test_every_load_path_turns_hub_kernels_off(spy, folder, tmp_path, monkeypatch, how, task) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(folder, cache / CACHE_SUBFOLDER)
    monkeypatch.setenv("RED_EXPLORER_CACHE", str(cache))
    spec = {"folder": str(folder), "hub id": HUB_ID, "default": "default"}[how]
    loaded = load_model(spec, task=task, num_labels=2 if task == "classification" else None, device="cpu")
    assert [call["use_kernels"] for call in spy] == [False]
    assert loaded.hub_kernels is False
    assert loaded.model.use_kernels is False


def test_opting_in_reaches_from_pretrained(spy, folder, monkeypatch) -> None:
    monkeypatch.setattr(loading, "_load_pretrained", _recording_load(loading._load_pretrained, spy))
    monkeypatch.setenv(HUB_KERNELS_ENV, "1")
    assert hub_kernels_wanted() is True
    loaded = load_model(str(folder), device="cpu", hub_kernels=False)  # the argument wins over the environment
    assert loaded.hub_kernels is False
    load_model(str(folder), device="cpu")
    assert [call["hub_kernels"] for call in spy if "hub_kernels" in call] == [False, True]


def _recording_load(original, calls: list[dict]):
    """``_load_pretrained`` that records its kernels argument and loads with kernels off (none exist offline)."""

    def load(source, task, num_labels, dtype, hub_kernels, quantized):
        calls.append({"hub_kernels": hub_kernels})
        return original(source, task, num_labels, dtype, False, quantized)

    return load


def test_cli_keeps_kernels_off_and_the_flag_opts_in(spy, folder, monkeypatch, capsys) -> None:
    command = ["generate", "--model", str(folder), "--device", "cpu", "--prompt", "red", "--max-new-tokens", "1"]
    assert main(command) == 0
    assert spy[-1]["use_kernels"] is False
    assert loading.os.environ[HUB_KERNELS_ENV] == "0"
    assert loading.os.environ["USE_HUB_KERNELS"] == "NO"  # transformers' own switch, for kernels loaded lazily
    monkeypatch.delenv("USE_HUB_KERNELS")
    monkeypatch.setattr(loading, "_load_pretrained", _recording_load(loading._load_pretrained, spy))
    assert main([*command, "--hub-kernels"]) == 0
    assert spy[-2] == {"hub_kernels": True}
    assert loading.os.environ[HUB_KERNELS_ENV] == "1"
    assert "USE_HUB_KERNELS" not in loading.os.environ


def test_app_and_bench_load_with_kernels_off(spy, folder) -> None:
    from red_explorer.app.model_registry import ModelRegistry
    from red_explorer.app.workbench import Workbench
    from red_explorer.bench.setup import load_bench_model

    Workbench(ModelRegistry()).load_model(str(folder), "causal-lm", "cpu", "float32")
    load_bench_model(str(folder), "cpu", "float32")
    assert [call["use_kernels"] for call in spy] == [False, False]


def test_a_full_fine_tuning_run_loads_with_its_bases_setting(folder, tmp_path, monkeypatch) -> None:
    from transformers import LlamaForCausalLM

    from red_explorer.runs.attach import attach_saved

    base = load_model(str(folder), device="cpu").model
    base.save_pretrained(tmp_path / "full")  # a full fine-tuning run is a whole checkpoint
    calls: list[dict] = []
    original = LlamaForCausalLM.from_pretrained.__func__

    def from_pretrained(klass, source, *args, **kwargs):
        calls.append(kwargs)
        return original(klass, source, *args, **kwargs)

    monkeypatch.setattr(LlamaForCausalLM, "from_pretrained", classmethod(from_pretrained))
    monkeypatch.setattr("red_explorer.runs.attach.detect_method", lambda path: "full")
    trained, spec = attach_saved(base, tmp_path / "full")
    assert spec.method == "full" and calls == [{"dtype": torch.float32, "use_kernels": False}]
    assert trained is not base and trained.use_kernels is False
