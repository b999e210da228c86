"""Recipe options of the one training loop: per-vector learning rates, weight decay toward the start
(RED's scale = 1 + s), no clipping, and the CLI flags that set them."""

import json
from types import SimpleNamespace

import pytest
import torch
from test_cli import cli
from tiny_models import save_tiny_causal_lm, tiny_model
from torch import nn

from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import attach_red, red_vectors
from red_explorer.engine.training import TrainConfig, parameter_groups, run_training, trainable_parameters


class Toy(nn.Module):
    """y = Σ (scale ⊙ x); scale is a vector (``offset``: scale = 1 + s, s starting at 0, as RED's ``1 + s``)."""

    def __init__(self, offset: bool):
        super().__init__()
        self.offset = offset
        self.vector = nn.Parameter(torch.zeros(4) if offset else torch.ones(4))

    def scale(self) -> torch.Tensor:
        return 1 + self.vector if self.offset else self.vector

    def forward(self, inputs, labels, attention_mask):
        output = (inputs * self.scale()).sum(-1)
        return SimpleNamespace(loss=((output - labels) ** 2).mean(), logits=output)


def toy_batches(epoch: int) -> list[dict]:
    generator = torch.Generator().manual_seed(epoch)
    inputs = torch.randn(4, 3, 4, generator=generator)
    labels = inputs @ torch.tensor([2.0, -1.0, 0.5, 3.0])
    return [{"inputs": x, "labels": y, "attention_mask": torch.ones(3, 1)} for x, y in zip(inputs, labels, strict=True)]


def train_toy(offset: bool, **config) -> torch.Tensor:
    model = Toy(offset)
    config = TrainConfig(learning_rate=0.1, max_steps=12, epochs=12.0, batch_size=3, **config)
    run_training(model, toy_batches, None, "classification", config)
    return model.scale().detach()


def test_decay_toward_the_start_is_adamw_decay_of_s_with_scale_1_plus_s():
    toward_start = train_toy(offset=False, weight_decay=0.5, decay_toward_start=True)
    one_plus_s = train_toy(offset=True, weight_decay=0.5)
    toward_zero = train_toy(offset=False, weight_decay=0.5)
    torch.testing.assert_close(toward_start, one_plus_s, atol=1e-6, rtol=0)
    assert (toward_start - toward_zero).abs().max() > 0.01  # AdamW's own decay pulls the scale toward 0 instead


def test_without_decay_scale_1_plus_s_trains_exactly_as_the_scale_itself():
    torch.testing.assert_close(train_toy(offset=False), train_toy(offset=True), atol=1e-6, rtol=0)


def test_scale_1_plus_s_starts_as_the_identity_edit():
    assert torch.equal(Toy(offset=True).scale(), Toy(offset=False).scale())
    assert torch.equal(Toy(offset=True).scale(), torch.ones(4))


def red_model():
    model = tiny_model("llama")
    attach_red(model, RedConfig())
    return model


def test_lr_factors_put_each_vector_kind_in_a_group_of_its_rate():
    parameters = trainable_parameters(red_model())
    config = TrainConfig(learning_rate=0.5, lr_factors={"red_scale": 0.25}, weight_decay=0.1)
    groups = parameter_groups(parameters, config)
    by_lr = {group["lr"]: {id(parameter) for parameter in group["params"]} for group in groups}
    scales = {id(p) for name, p in parameters.items() if name.endswith("red_scale")}
    biases = {id(p) for name, p in parameters.items() if name.endswith("red_bias")}
    assert by_lr == {0.125: scales, 0.5: biases}
    assert [group["weight_decay"] for group in groups] == [0.1, 0.1]
    toward_start = parameter_groups(parameters, TrainConfig(weight_decay=0.1, decay_toward_start=True))
    assert [group["weight_decay"] for group in toward_start] == [0.0]  # the loop decays toward the start itself


def test_a_tiny_scale_rate_leaves_the_scale_while_the_bias_trains(tmp_path):
    model = red_model()
    batches = [{"input_ids": torch.randint(0, 64, (2, 8)), "attention_mask": torch.ones(2, 8, dtype=torch.long)}]
    batches[0]["labels"] = batches[0]["input_ids"].clone()
    config = TrainConfig(learning_rate=0.05, max_steps=3, epochs=3.0, lr_factors={"red_scale": 1e-6})
    run_training(model, lambda epoch: batches, None, "causal-lm", config)
    vectors = red_vectors(model)
    scale_moved = max((v - 1).abs().max().item() for name, v in vectors.items() if name.endswith("red_scale"))
    bias_moved = max(v.abs().max().item() for name, v in vectors.items() if name.endswith("red_bias"))
    assert scale_moved < 1e-6 < 0.01 < bias_moved


def test_max_grad_norm_zero_trains_unclipped():
    unclipped = train_toy(offset=False, max_grad_norm=0.0)
    clipped = train_toy(offset=False, max_grad_norm=1e-3)
    assert (unclipped - 1).abs().max() > 0.3  # it learns (a zero norm used to zero every gradient)
    assert not torch.allclose(unclipped, clipped)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr_factors": {"red_scale": 0.0}}, "positive multipliers"),
        ({"lr_factors": {"": 0.5}}, "parameter-name suffixes"),
        ({"warmup_ratio": 1.0}, "warmup_ratio must be in"),
        ({"max_grad_norm": -1.0}, "0: no clipping"),
    ],
)
def test_recipe_settings_reject_nonsense(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**options)


def test_an_lr_factor_that_matches_nothing_says_so():
    with pytest.raises(ValueError, match=r"lr_factors \['lora_A'\] match no trainable parameter"):
        parameter_groups(trainable_parameters(red_model()), TrainConfig(lr_factors={"lora_A": 2.0}))


def test_cli_train_takes_the_recipe_flags(tmp_path):
    model = save_tiny_causal_lm(tmp_path / "model")
    out = tmp_path / "run"
    args = ["train", "--model", str(model), "--data", "red_explorer/samples/pirate_style.jsonl", "--max-rows", "16"]
    args += ["--max-steps", "2", "--batch-size", "4", "--out", str(out), "--scheduler", "cosine"]
    args += ["--warmup-ratio", "0.1", "--weight-decay", "0.01", "--decay-toward-start", "--lr-factor", "red_scale=0.3"]
    args += ["--max-grad-norm", "0"]
    cli(*args)
    config = json.loads((out / "metrics.json").read_text())["train_config"]
    assert {key: config[key] for key in ("scheduler", "warmup_ratio", "weight_decay", "max_grad_norm")} == {
        "scheduler": "cosine",
        "warmup_ratio": 0.1,
        "weight_decay": 0.01,
        "max_grad_norm": 0.0,
    }
    assert config["decay_toward_start"] is True and config["lr_factors"] == {"red_scale": 0.3}
