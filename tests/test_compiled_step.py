"""The compiled training step (``TrainConfig.compile``): the same run as eager, batches padded to few shapes
with the same loss, the base left exactly as it was, and clear refusals."""

from __future__ import annotations

import json

import pytest
import torch
from test_cli import cli
from tiny_models import save_tiny_causal_lm, tiny_model

from red_explorer.core.red.edit import detach_red
from red_explorer.core.registry import MethodSpec, apply_method
from red_explorer.data.batching import PaddingCollator
from red_explorer.engine.compiled import PAD_MULTIPLE, compiled_for_training
from red_explorer.engine.training import TrainConfig, run_training


def same_length_batches(epoch: int) -> list[dict[str, torch.Tensor]]:
    """The same three batches every epoch, of one shape: one graph to compile, and a loss that can fall."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(3):
        ids = torch.randint(5, 100, (4, 12), generator=generator)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()})
    return batches


def trained_red(mode: str) -> tuple[list[float], dict[str, torch.Tensor], torch.Tensor]:
    """(training losses, RED's trained vectors, the logits of the base after detaching) for one run."""
    torch.manual_seed(0)
    base = tiny_model("llama")
    probe = torch.arange(5, 17).unsqueeze(0)
    with torch.no_grad():
        before = base(input_ids=probe).logits
    model = apply_method(base, MethodSpec("red"), "causal-lm")
    config = TrainConfig(learning_rate=1e-1, max_steps=6, epochs=6, warmup_ratio=0.0, compile=mode)
    result = run_training(model, same_length_batches, None, "causal-lm", config)
    vectors = {name: value.detach().clone() for name, value in model.named_parameters() if value.requires_grad}
    detach_red(base)
    with torch.no_grad():
        after = base(input_ids=probe).logits
    assert torch.equal(before, after)  # the compiled wrapper left nothing on the base
    return result.train_loss, vectors, after


def test_a_compiled_step_trains_the_same_run_as_eager():
    from torch._dynamo.utils import counters

    eager_losses, eager_vectors, _ = trained_red("")
    counters.clear()
    compiled_losses, compiled_vectors, _ = trained_red("default")
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]  # RED's hooks in the one graph
    assert all(later < first for first, later in zip(eager_losses[:3], eager_losses[3:], strict=True))  # per batch
    assert compiled_losses == pytest.approx(eager_losses, abs=1e-4)
    assert compiled_vectors.keys() == eager_vectors.keys() and len(eager_vectors) == 4  # 2 layers × scale, bias
    for name, value in eager_vectors.items():
        torch.testing.assert_close(compiled_vectors[name], value, atol=1e-4, rtol=1e-4)
        assert not torch.equal(value, torch.ones_like(value)) and not torch.equal(value, torch.zeros_like(value))


@pytest.mark.parametrize("family, task", [("llama", "causal-lm"), ("bert", "classification")])
def test_padding_to_a_multiple_leaves_the_loss_unchanged(family, task):
    torch.manual_seed(0)
    model = tiny_model(family).eval()
    features = [
        {"input_ids": list(range(5, 5 + length)), "attention_mask": [1] * length}
        | {"labels": 1 if task == "classification" else list(range(5, 5 + length))}
        for length in (7, 11, 3)
    ]
    plain = PaddingCollator(pad_token_id=0, task=task)(features)
    padded = PaddingCollator(pad_token_id=0, task=task, multiple=PAD_MULTIPLE)(features)
    assert plain["input_ids"].shape == (3, 11) and padded["input_ids"].shape == (3, PAD_MULTIPLE)
    with torch.no_grad():
        assert model(**padded).loss.item() == pytest.approx(model(**plain).loss.item(), abs=1e-5)


def test_an_unknown_mode_and_a_distributed_compile_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match=r"compile must be one of default, reduce-overhead, max-autotune"):
        TrainConfig(compile="fast")
    with pytest.raises(ValueError, match=r"runs in one process; under `accelerate launch` leave compile off"):
        compiled_for_training(tiny_model("llama"), "default", num_processes=2)
    model = tiny_model("llama")
    assert compiled_for_training(model, "") is model  # eager: the model itself


def test_cli_train_with_compile_pads_to_few_shapes_and_records_the_mode(tmp_path):
    model = save_tiny_causal_lm(tmp_path / "model")
    out = tmp_path / "run"
    args = ["train", "--model", str(model), "--data", "red_explorer/samples/pirate_style.jsonl", "--max-rows", "16"]
    cli(*args, "--max-steps", "3", "--batch-size", "4", "--max-length", "64", "--compile", "default", "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_config"]["compile"] == "default" and metrics["stopped_reason"] == "completed"
    assert len(metrics["train_loss"]) == 3 and all(0 < loss < 10 for loss in metrics["train_loss"])
