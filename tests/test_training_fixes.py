"""Regression tests of training bugs: the RED hook after in-place updates, accumulation, seeded runs."""

from __future__ import annotations

import pytest
import torch
import transformers as tf
from test_edit import randomize as randomize_red
from test_training import train_on_copy
from tiny_models import logits, sample_inputs, save_tiny_causal_lm, tiny_model
from torch import nn

from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import BIAS, SCALE, attach_red, red_vectors
from red_explorer.core.registry import MethodSpec, load_edits, save_edits
from red_explorer.data.batching import PaddingCollator
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.distributed import Runtime
from red_explorer.engine.training import TrainConfig, accumulate_gradients, run_training, trainable_parameters
from red_explorer.models.loading import load_model

SAMPLE = "red_explorer/samples/restaurants_e2e.csv"

# ---------------------------------------------------------------- 1. the RED hook casts its vectors every call


def addcmul_hooks(base: nn.Module, vectors: dict[str, torch.Tensor]) -> list:
    """scale ⊙ h + bias in the output's dtype, with the same fused op as the RED hook (bitwise comparable)."""
    handles = []
    for module_name in {name.rsplit(".", 1)[0] for name in vectors}:
        scale, bias = vectors[f"{module_name}.{SCALE}"], vectors[f"{module_name}.{BIAS}"]

        def hook(module, inputs, output, scale=scale, bias=bias):
            return torch.addcmul(bias.to(output.dtype), output, scale.to(output.dtype))

        handles.append(base.get_submodule(module_name).register_forward_hook(hook))
    return handles


def hand_logits(base: nn.Module, vectors: dict[str, torch.Tensor], input_ids: torch.Tensor) -> torch.Tensor:
    handles = addcmul_hooks(base, {name: vector.detach().clone() for name, vector in vectors.items()})
    try:
        return logits(base, input_ids)
    finally:
        for handle in handles:
            handle.remove()


def bf16_llama_with_red() -> nn.Module:
    model = tiny_model("llama").to(torch.bfloat16)
    attach_red(model, RedConfig())  # float32 vectors on a bfloat16 model: the hook casts them
    return model


def in_place_update(model: nn.Module, kind: str) -> None:
    """One update of the vectors that does not move their version counter (fused AdamW, .data) or does."""
    vectors = list(red_vectors(model).values())
    if kind == "data":
        with torch.no_grad():
            for vector in vectors:
                vector.data.add_(0.25)
        return
    input_ids = sample_inputs()
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    optimizer = torch.optim.AdamW(vectors, lr=0.1, **{kind: True})
    optimizer.step()


@pytest.mark.parametrize("kind", ["fused", "foreach", "data"])
def test_evaluation_after_an_in_place_update_uses_the_new_vectors(kind):
    model, base, input_ids = bf16_llama_with_red(), tiny_model("llama").to(torch.bfloat16), sample_inputs()
    before = logits(model, input_ids)  # a no-grad pass first: a cached cast would be made here
    in_place_update(model, kind)
    after = logits(model, input_ids)
    assert not torch.equal(after, before)
    assert torch.equal(after, hand_logits(base, red_vectors(model), input_ids))


def test_inference_mode_passes_leave_nothing_that_breaks_a_later_backward():
    """Frozen vectors (loaded edits) used under inference_mode, then a backward into another parameter."""
    model, base, input_ids = bf16_llama_with_red(), tiny_model("llama").to(torch.bfloat16), sample_inputs()
    randomize_red(model)
    for vector in red_vectors(model).values():
        vector.requires_grad_(False)
    with torch.inference_mode():
        model(input_ids=input_ids)
    embedding = model.model.embed_tokens.weight.requires_grad_(True)
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    handles = addcmul_hooks(base, {name: vector.clone() for name, vector in red_vectors(model).items()})
    try:
        base(input_ids=input_ids, labels=input_ids).loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    assert not any(vector.is_inference() for vector in red_vectors(model).values())
    assert embedding.grad.abs().sum() > 0
    assert torch.equal(embedding.grad, base.model.embed_tokens.weight.grad)


def test_transformers_trainer_trains_the_vectors_and_evaluates_with_them(tmp_path):
    model = bf16_llama_with_red()
    rows = [{"input_ids": ids, "labels": ids} for ids in sample_inputs(batch=4, length=8)]
    arguments = tf.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=0.1,
        optim="adamw_torch_fused",
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = tf.Trainer(model=model, args=arguments, train_dataset=rows, eval_dataset=rows)
    before = trainer.evaluate()["eval_loss"]  # a no-grad pass before training
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert any(not torch.equal(vector, torch.ones_like(vector)) for vector in red_vectors(model).values())
    save_edits(model, tmp_path / "edits", "tiny")
    fresh = tiny_model("llama").to(torch.bfloat16)
    load_edits(fresh, tmp_path / "edits")
    batch = torch.stack([row["input_ids"] for row in rows])
    with torch.no_grad():
        expected = fresh(input_ids=batch, labels=batch).loss.item()
    assert after != before
    assert after == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------- 2. gradient accumulation is a bigger batch


def uneven_rows() -> list[dict[str, list[int]]]:
    """Four examples of different lengths whose prompts (label -100) are of different lengths too."""
    generator = torch.Generator().manual_seed(5)
    rows = []
    for length, prompt in [(12, 2), (5, 3), (9, 1), (16, 10)]:
        ids = torch.randint(3, 100, (length,), generator=generator).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * length, "labels": [-100] * prompt + ids[prompt:]})
    return rows


def red_gradients(model: nn.Module) -> dict[str, torch.Tensor]:
    gradients = {name: vector.grad.detach().clone() for name, vector in red_vectors(model).items()}
    for vector in red_vectors(model).values():
        vector.grad = None
    return gradients


def edited_llama() -> nn.Module:
    model = tiny_model("llama")
    attach_red(model, RedConfig(sites=["ffn", "attn"]))
    randomize_red(model)
    return model


def test_accumulated_uneven_micro_batches_give_the_full_batch_gradient():
    model, collate, rows = edited_llama(), PaddingCollator(pad_token_id=0, task="causal-lm"), uneven_rows()
    full = collate(rows)
    loss = model(**full).loss
    loss.backward()
    expected = red_gradients(model)
    mean, targets = accumulate_gradients(model, [collate(rows[:3]), collate(rows[3:])], "causal-lm", Runtime())
    actual = red_gradients(model)
    assert targets == int((full["labels"][:, 1:] != -100).sum())
    assert mean == pytest.approx(loss.item(), rel=1e-5)
    for name, gradient in expected.items():
        torch.testing.assert_close(actual[name], gradient, rtol=1e-4, atol=1e-7)


class SimulatedProcess(Runtime):
    """One of two DDP processes: each sum across processes adds the values the other process contributes."""

    def __init__(self, peer_values: list[list[float]]):
        super().__init__()
        self.peer_values = list(peer_values)

    @property
    def num_processes(self) -> int:
        return 2

    def sum_across(self, values: list[float]) -> list[float]:
        return [value + peer for value, peer in zip(values, self.peer_values.pop(0), strict=True)]


def test_two_processes_average_to_the_full_batch_gradient_and_loss():
    model, collate, rows = edited_llama(), PaddingCollator(pad_token_id=0, task="causal-lm"), uneven_rows()
    full = collate(rows)
    loss = model(**full).loss
    loss.backward()
    expected = red_gradients(model)
    groups = [[collate(rows[:1]), collate(rows[1:3])], [collate(rows[3:])]]  # process 0, process 1
    counts = [sum(int((batch["labels"][:, 1:] != -100).sum()) for batch in group) for group in groups]
    means, gradients = [], []
    for rank, group in enumerate(groups):
        # the other process adds its target count, then nothing to the loss: each mean is this process's share
        runtime = SimulatedProcess([[counts[1 - rank]], [0.0]])
        means.append(accumulate_gradients(model, group, "causal-lm", runtime)[0])
        gradients.append(red_gradients(model))
    assert sum(means) == pytest.approx(loss.item(), rel=1e-5)
    for name, gradient in expected.items():
        averaged = (gradients[0][name] + gradients[1][name]) / 2  # what DDP's all-reduce computes
        torch.testing.assert_close(averaged, gradient, rtol=1e-4, atol=1e-7)


def test_training_loop_reports_the_mean_loss_per_target_of_the_whole_group():
    collate, rows = PaddingCollator(pad_token_id=0, task="causal-lm"), uneven_rows()
    results, vectors = [], []
    for batches, accumulation in [([collate(rows)], 1), ([collate(rows[:3]), collate(rows[3:])], 2)]:
        config = TrainConfig(learning_rate=1e-2, max_steps=1, gradient_accumulation=accumulation, warmup_ratio=0.0)
        model = edited_llama()
        results.append(run_training(model, lambda epoch, batches=batches: batches, None, "causal-lm", config))
        vectors.append({name: vector.detach().clone() for name, vector in red_vectors(model).items()})
    assert results[0].steps == results[1].steps == 1
    assert results[1].train_loss == pytest.approx(results[0].train_loss, rel=1e-5)
    for name, vector in vectors[0].items():
        torch.testing.assert_close(vectors[1][name], vector, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- 4. seeded runs are reproducible


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_model(str(save_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")), device="cpu")


@pytest.fixture(scope="module")
def data(loaded):
    return prepare_data(SAMPLE, loaded.tokenizer, DataConfig(max_length=64, max_rows=12))


def trained(loaded, data, spec: MethodSpec, seed: int) -> tuple[float, dict[str, torch.Tensor]]:
    config = TrainConfig(learning_rate=1e-2, max_steps=2, batch_size=4, seed=seed)
    result = train_on_copy(loaded, data, spec, config)
    tensors = {name: p.detach().clone() for name, p in trainable_parameters(result.model).items()}
    return result.train_loss[-1], tensors


@pytest.mark.parametrize("method", ["tare", "lora"])
def test_same_seed_runs_are_identical(loaded, data, method):
    torch.manual_seed(123)  # the global generator's state before each run must not matter
    runs = [trained(loaded, data, MethodSpec(method), seed=7) for _ in range(3)]
    assert runs[0][1], "precondition: the method trains some tensors"
    for loss, tensors in runs[1:]:
        assert loss == runs[0][0]
        assert tensors.keys() == runs[0][1].keys()
        assert all(torch.equal(tensor, runs[0][1][name]) for name, tensor in tensors.items())


def test_another_seed_gives_other_tare_selectors(loaded, data):
    selectors = []
    for seed in (7, 8):
        _, tensors = trained(loaded, data, MethodSpec("tare"), seed=seed)
        selectors.append({name: tensor for name, tensor in tensors.items() if name.endswith("tare_selector")})
    assert selectors[0] and all(not torch.equal(tensor, selectors[1][name]) for name, tensor in selectors[0].items())
