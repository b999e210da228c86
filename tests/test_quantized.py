"""Quantized bases: loading in 8 and 4 bits, training on them, moving edits between bases, merging."""

import argparse
import copy
import json
from dataclasses import replace

import pytest
import torch
from tiny_models import logits, sample_inputs, save_tiny_causal_lm
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

from red_explorer.bench.setup import load_bench_model
from red_explorer.cli.main import build_parser
from red_explorer.core.merged import merge_tolerance, save_merged
from red_explorer.core.method import MergeError
from red_explorer.core.registry import METHODS, MethodSpec, apply_method, load_method, save_method
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.experiment import default_train_config, train_method
from red_explorer.models import loading
from red_explorer.models.loading import load_model
from red_explorer.models.quantization import dequantize_base, is_quantized, quantization_config
from red_explorer.runs.record import BaseModelKey, RunRecord

SAMPLE = "red_explorer/samples/restaurants_e2e.csv"
# How far an unedited tiny Llama's logits move when its weights are quantized (measured: 0.002 and 0.045).
BASE_SHIFT = {"8bit": 0.01, "4bit": 0.1}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("quantized") / "model")


@pytest.fixture(scope="module")
def plain(folder):
    return load_model(str(folder), device="cpu")


@pytest.fixture(scope="module", params=["8bit", "4bit"])
def quantized(request, folder):
    return load_model(str(folder), device="cpu", quantize=request.param)


@pytest.fixture(scope="module")
def int8(folder):
    return load_model(str(folder), device="cpu", quantize="8bit")


@pytest.fixture(scope="module")
def data(plain):
    return prepare_data(SAMPLE, plain.tokenizer, DataConfig(max_length=256, max_rows=40))


def shift(first: torch.nn.Module, second: torch.nn.Module) -> float:
    """The largest |Δlogit| between two models on the sample inputs."""
    return (logits(first, sample_inputs()) - logits(second, sample_inputs())).abs().max().item()


def test_a_quantized_base_holds_quantized_weights_and_computes_nearly_the_base(plain, quantized):
    weight = quantized.model.model.layers[0].mlp.down_proj.weight
    assert quantized.quantize in ("8bit", "4bit") and is_quantized(quantized.model)
    assert type(weight).__name__ in ("Int8Tensor", "IntxUnpackedToInt8Tensor")
    assert not any(parameter.requires_grad for parameter in quantized.model.parameters())
    assert 0 < shift(plain.model, quantized.model) < BASE_SHIFT[quantized.quantize]
    assert BaseModelKey.of(quantized).quantize == quantized.quantize
    assert BaseModelKey.of(plain).quantize is None


def test_bitsandbytes_configs_reach_from_pretrained_on_cuda(folder, monkeypatch):
    seen = {}

    def spy(source, **options):
        seen.update(options)
        raise OSError("stopped by the test")

    monkeypatch.setattr(loading, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", spy)
    with pytest.raises(loading.ModelLoadError, match="stopped by the test"):
        load_model(str(folder), device="cuda", dtype="bfloat16", quantize="4bit")
    config = seen["quantization_config"]
    assert isinstance(config, BitsAndBytesConfig) and config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert seen["device_map"] == {"": torch.device("cuda")} and seen["dtype"] == torch.bfloat16
    eight = quantization_config("8bit", torch.device("cuda"), torch.float16)
    assert eight.load_in_8bit and not eight.load_in_4bit


def test_bad_quantize_choices_say_what_works():
    with pytest.raises(ValueError, match="use None .* '8bit' or '4bit'"):
        quantization_config("3bit", torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="CUDA .* and CPU .*not on mps"):
        quantization_config("4bit", torch.device("mps"), torch.float32)
    assert quantization_config(None, torch.device("cpu"), torch.float32) is None


@pytest.mark.parametrize("method", ["full", "bitfit"])
def test_methods_that_train_the_base_itself_refuse_a_quantized_base(quantized, method):
    with pytest.raises(ValueError, match="cannot train on a quantized base: .*Load the base without quantization"):
        apply_method(copy.deepcopy(quantized.model), MethodSpec(method), "causal-lm")


@pytest.mark.parametrize("method", ["red", "lora"])
def test_training_on_a_quantized_base_moves_to_the_plain_base_and_merges_plainly(
    plain, quantized, data, method, tmp_path
):
    """The loss falls; the edits load on the unquantized base and change its logits by at most twice
    what quantization changes the unedited base's; merging writes a plain float32 checkpoint."""
    spec = MethodSpec(method)
    config = default_train_config(spec, epochs=2, batch_size=8, **({"learning_rate": 1e-2} if method == "lora" else {}))
    result = train_method(replace(quantized, model=copy.deepcopy(quantized.model)), data, spec, config)
    assert result.metrics_after["loss"] < result.metrics_before["loss"] - 0.03
    save_method(result.model, spec, tmp_path / "run")
    moved, _ = load_method(copy.deepcopy(plain.model), tmp_path / "run")
    assert shift(moved, plain.model) > 0.2  # the edit does something ...
    assert shift(moved, result.model) <= 2 * shift(plain.model, quantized.model)  # ... the same on both bases

    merged_folder = save_merged(result.model, tmp_path / "merged")
    saved = json.loads((merged_folder / "config.json").read_text())
    assert "quantization_config" not in saved and saved["dtype"] == "float32"
    merged = AutoModelForCausalLM.from_pretrained(merged_folder)
    assert all(type(parameter.data) is torch.Tensor for parameter in merged.parameters())
    scale = logits(result.model, sample_inputs()).abs().max().item()
    assert shift(merged, result.model) <= merge_tolerance(torch.float32, 2) * scale


def test_red_trained_on_the_plain_base_moves_onto_a_quantized_base(plain, quantized, data, tmp_path):
    spec = MethodSpec("red")
    result = train_method(
        replace(plain, model=copy.deepcopy(plain.model)), data, spec, default_train_config(spec, max_steps=3)
    )
    save_method(result.model, spec, tmp_path / "run")
    moved, _ = load_method(copy.deepcopy(quantized.model), tmp_path / "run")
    assert shift(moved, quantized.model) > 0.05
    assert shift(moved, result.model) <= 2 * shift(plain.model, quantized.model)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return actions[0].choices if actions else {}


def _has(parser: argparse.ArgumentParser, option: str) -> bool:
    return any(option in action.option_strings for action in parser._actions)


@pytest.mark.parametrize("command", ["train", "ablate", "sweep", "generate", "explore", "bench", "merge"])
def test_every_model_command_takes_quantize(command):
    parser = _subparsers(build_parser())[command]
    leaves = [leaf for leaf in list(_subparsers(parser).values()) or [parser] if _has(leaf, "--model")]
    assert leaves  # explore: each action that loads a model
    for leaf in leaves:
        option = next(action for action in leaf._actions if "--quantize" in action.option_strings)
        assert option.choices == ["4bit", "8bit"] and option.default is None


def test_the_app_keys_loads_and_describes_a_quantized_base(folder):
    from red_explorer.app.model_info import model_info
    from red_explorer.app.model_registry import ModelKey, ModelRegistry
    from red_explorer.app.ui.handlers.model import info_markdown

    assert ModelKey(str(folder), quantize="none").resolved() == ModelKey(str(folder), device="cpu").resolved()
    with pytest.raises(ValueError, match="unknown quantize '2bit'"):
        ModelKey(str(folder), quantize="2bit").resolved()
    key = ModelKey(str(folder), device="cpu", quantize="8bit")
    loaded = ModelRegistry().get(key)
    assert loaded.quantize == "8bit" and is_quantized(loaded.model)
    assert "cpu · float32 · weights stored in 8 bits" in info_markdown(model_info(loaded))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_on_a_quantized_base_and_merges_plainly_or_says_why_not(int8, data, method, tmp_path):
    spec = MethodSpec(method)
    loaded = replace(int8, model=copy.deepcopy(int8.model))
    if method in ("full", "bitfit"):
        with pytest.raises(ValueError, match="cannot train on a quantized base"):
            train_method(loaded, data, spec, default_train_config(spec, max_steps=1))
        return
    result = train_method(loaded, data, spec, default_train_config(spec, max_steps=2, batch_size=8))
    assert result.stopped_reason == "completed" and result.trainable_parameters > 0
    try:
        merged_folder = save_merged(result.model, tmp_path / "merged")
    except MergeError as error:  # TARE and LoReFT edit per token: no fixed weights compute them
        assert method in ("tare", "loreft") and "cannot be merged" in str(error)
        return
    assert "quantization_config" not in json.loads((merged_folder / "config.json").read_text())


def test_a_run_records_its_quantization_and_older_runs_read_as_unquantized(quantized):
    base = BaseModelKey.of(quantized)
    record = RunRecord("id", "label", "owner", "2026-01-01", None, base, {}, {}, None, [], [], 0, [])
    assert RunRecord.from_dict(record.to_dict()).base.quantize == quantized.quantize
    older = record.to_dict()
    del older["base"]["quantize"]
    assert RunRecord.from_dict(older).base.quantize is None


def test_bench_quantizes_only_a_loaded_model():
    with pytest.raises(ValueError, match="--quantize applies to a loaded model, not to the random 'tiny'"):
        load_bench_model("tiny", device="cpu", quantize="8bit")


def test_the_app_trains_on_a_quantized_base_and_exports_a_plain_merge(tmp_path):
    import zipfile

    from app_helpers import save_tiny_llama, tiny_rows, write_csv

    from red_explorer.app.model_registry import ModelRegistry
    from red_explorer.app.options import TrainOptions
    from red_explorer.app.workbench import Workbench

    bench = Workbench(ModelRegistry())
    bench.load_model(str(save_tiny_llama(tmp_path / "model")), "causal-lm", "cpu", "auto", "4bit")
    bench.load_data(write_csv(tmp_path / "words.csv", tiny_rows(40)))
    base = logits(bench.loaded().model, sample_inputs())
    options = TrainOptions(max_steps=3, max_length=64, batch_size=8, eval_every=None)
    for spec in (MethodSpec("red"), MethodSpec("lora")):  # the second reuses the reset training replica
        label = bench.train(spec, options).label
        with bench.attached(label) as model:
            assert (logits(model, sample_inputs()) - base).abs().max() > 0.05
        with zipfile.ZipFile(bench.export_merged_zip(label)) as archive:
            names = [name for name in archive.namelist() if name.rpartition("/")[2] == "config.json"]
            config = json.loads(archive.read(names[0]))
        assert "quantization_config" not in config
    assert torch.equal(logits(bench.loaded().model, sample_inputs()), base)  # the shared base is as loaded
    bench.close()


def test_the_cli_trains_on_a_quantized_base_keeps_the_quantization_and_merges_plainly(folder, tmp_path, capsys):
    from red_explorer.cli.main import main
    from red_explorer.cli.runs import OWNER, store_for

    home, out = tmp_path / "home", tmp_path / "run"
    common = ["--model", str(folder), "--device", "cpu", "--quantize", "8bit"]
    train = ["train", *common, "--data", SAMPLE, "--max-rows", "20", "--max-steps", "2", "--out", str(out)]
    assert main([*train, "--home", str(home)]) == 0
    (record,) = store_for(str(home)).list(OWNER)
    assert record.base.quantize == "8bit" and f'"run_id": "{record.id}"' in capsys.readouterr().out
    assert main(["merge", *common, "--edits", str(out), "--out", str(tmp_path / "merged")]) == 0
    assert "quantization_config" not in json.loads((tmp_path / "merged" / "config.json").read_text())


def test_a_merge_whose_dequantized_base_is_wrong_is_refused_not_written(int8, data, monkeypatch, tmp_path):
    from red_explorer.core import merged as merged_module

    def off_by_a_little(model, dtype):
        plain = dequantize_base(model, dtype)
        with torch.no_grad():
            plain.model.layers[1].mlp.down_proj.weight.mul_(1.05)  # what a wrong dequantization would do
        return plain

    spec = MethodSpec("red")
    config = default_train_config(spec, max_steps=1)
    result = train_method(replace(int8, model=copy.deepcopy(int8.model)), data, spec, config)
    monkeypatch.setattr(merged_module, "dequantize_base", off_by_a_little)
    with pytest.raises(MergeError, match="differs from the edited one .* not written"):
        save_merged(result.model, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_torchaos_harmless_import_notices_are_quiet_and_its_other_warnings_are_not(caplog):
    import logging

    import red_explorer  # noqa: F401  (installs the filters)

    with caplog.at_level(logging.WARNING):
        logging.getLogger("torchao").warning("Failed to load /site-packages/torchao/_C_cutlass_90a.abi3.so: no CUDA")
        logging.getLogger("torchao").warning("int4 weights need a group size that divides the input features")
    assert [record.getMessage() for record in caplog.records] == [
        "int4 weights need a group size that divides the input features"
    ]


def test_red_refuses_to_fold_into_quantized_weights_in_place_and_the_bench_leaves_those_rows_out(int8):
    from red_explorer.bench.serve import generation_factories
    from red_explorer.bench.setup import BenchModel, choose_shape
    from red_explorer.bench.train import train_specs
    from red_explorer.core.red.config import RedConfig
    from red_explorer.core.red.edit import attach_red, detach_red
    from red_explorer.core.red.merge import merge_red

    model = copy.deepcopy(int8.model)
    attach_red(model, RedConfig())
    with pytest.raises(MergeError, match="does not fold into quantized weights in place.* save_merged"):
        merge_red(model)
    detach_red(model)
    assert list(train_specs(model)) == ["red_ffn", "red_ffn_attn", "lora_r8", "tare"]
    bench = BenchModel(model, int8.tokenizer, "tiny-int8", "", int8.device, int8.dtype)
    shape = choose_shape(int8.device, True, "tiny-int8")
    assert list(generation_factories(bench, shape)) == ["base", "red_attached", "lora_attached", "tare_attached"]
