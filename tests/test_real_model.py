"""The real embedded default model (SmolLM2-135M-Instruct): the whole RED path on real weights."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from red_explorer.core.merged import save_merged
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, red_disabled, red_parameter_count
from red_explorer.core.registry import MethodSpec, load_edits
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.experiment import default_train_config, save_run, train_method, trained_run
from red_explorer.models.loading import load_model

pytestmark = pytest.mark.real_model


@pytest.fixture
def default(default_model):
    return default_model


def prompt_ids(loaded, text="What is the capital of France?"):
    message = [{"role": "user", "content": text}]
    rendered = loaded.tokenizer.apply_chat_template(message, tokenize=False, add_generation_prompt=True)
    return loaded.tokenizer(rendered, return_tensors="pt", add_special_tokens=False)["input_ids"]


def test_edit_save_merge_reload_on_the_default_model(default, tmp_path):
    import copy

    model, input_ids = copy.deepcopy(default.model), prompt_ids(default)
    with torch.no_grad():
        base = model(input_ids=input_ids).logits
    attach_red(model, RedConfig(sites=["ffn", "attn"]))
    assert red_parameter_count(model) == 2 * 576 * 30 * 2
    with torch.no_grad():
        assert torch.equal(model(input_ids=input_ids).logits, base)
        generator = torch.Generator().manual_seed(0)
        for name, vector in model.named_parameters():
            if "red_" in name:
                vector.add_(torch.randn(vector.shape, generator=generator) * 0.05)
        edited = model(input_ids=input_ids).logits
        with red_disabled(model):
            assert torch.equal(model(input_ids=input_ids).logits, base)
    assert (edited - base).abs().max() > 1e-3
    save_run_dir = tmp_path / "edits"
    from red_explorer.core.registry import save_edits

    save_edits(model, save_run_dir, "default")
    size = (save_run_dir / "edits.safetensors").stat().st_size
    assert 100_000 < size < 1_000_000  # a few hundred KB
    fresh = copy.deepcopy(default.model)
    load_edits(fresh, save_run_dir)
    with torch.no_grad():
        assert torch.equal(fresh(input_ids=input_ids).logits, edited)
    save_merged(fresh, tmp_path / "merged", default.tokenizer)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        difference = (plain(input_ids=input_ids).logits - edited).abs().max()
    # fp32 rounding through 30 layers: far below a logit's resolution (|logits| reach ~30 here)
    assert difference < 1e-5 * edited.abs().max() and difference < 1e-3


def test_red_lowers_validation_loss_on_a_bundled_sample(default, tmp_path):
    config = DataConfig(max_length=96, max_rows=72, validation_fraction=0.12)
    data = prepare_data("red_explorer/samples/restaurants_e2e.csv", default.tokenizer, config)
    spec = MethodSpec("red")
    with trained_run(default, data, spec, default_train_config(spec, max_steps=8, batch_size=8)) as result:
        assert result.stopped_reason == "completed"
        assert result.metrics_after["loss"] < result.metrics_before["loss"] - 0.2
        save_run(result, default, tmp_path)
    assert (tmp_path / "edits.safetensors").is_file() and (tmp_path / "metrics.json").is_file()


def test_red_classifies_sentiment_with_the_minilm_encoder():
    """The paper's GLUE route: RED + a new head on a real encoder (all-MiniLM-L6-v2)."""
    config = DataConfig(task="classification", max_length=64)
    from red_explorer.data.tables import load_table

    labels = load_table("red_explorer/samples/sentiment.csv", config)[1].labels
    encoder = load_model("minilm", task="classification", num_labels=len(labels), device="cpu")
    data = prepare_data("red_explorer/samples/sentiment.csv", encoder.tokenizer, config)
    spec = MethodSpec("red")
    result = train_method(encoder, data, spec, default_train_config(spec, epochs=2, batch_size=16))
    assert result.trainable_parameters == 2 * 384 * 6 + 384 * 2 + 2
    assert result.metrics_after["accuracy"] >= 0.9 > result.metrics_before["accuracy"]


def test_export_snippet_runs_in_a_fresh_shell_and_generates(default, tmp_path):
    """The Export tab's Python runs as given, from another folder, with only the installed package."""
    import copy
    import os
    import subprocess
    import sys

    from red_explorer.app.snippet import python_snippet
    from red_explorer.core.archive import zip_folder
    from red_explorer.core.registry import save_edits

    model = copy.deepcopy(default.model)
    attach_red(model, RedConfig())
    save_edits(model, tmp_path / "edits", base_model=default.base_name)
    zip_folder(tmp_path / "edits", tmp_path / "red-edits.zip")
    script = python_snippet("red-edits.zip", "RED full (ffn)", "red", "default", "causal-lm", None)
    (tmp_path / "apply.py").write_text(script)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "apply.py"], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "loaded RED full (ffn)" and len(lines) >= 3 and lines[1].strip()  # the generation
    assert lines[-1] == "same logits without red_explorer: True"
