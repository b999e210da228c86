"""What the explore tests share: random non-identity edits, saved runs, tiny batches, in-process CLI runs."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import torch
from tiny_models import VOCAB

from red_explorer.cli.main import main
from red_explorer.core.red.bank import swap_edits
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import SCALE, attach_red, red_vectors
from red_explorer.core.red.saving import save_red

SAMPLE = "red_explorer/samples/restaurants_e2e.csv"


def random_vectors(model: torch.nn.Module, seed: int, spread: float = 0.3) -> dict[str, torch.Tensor]:
    """Non-identity values for every RED vector attached to ``model`` (scales around 1, biases around 0)."""
    generator = torch.Generator().manual_seed(seed)
    vectors = {}
    for name, vector in red_vectors(model).items():
        noise = torch.randn(vector.shape, generator=generator) * spread
        vectors[name] = noise + 1 if name.endswith(SCALE) else noise
    return vectors


def with_random_red(model: torch.nn.Module, config: RedConfig | None = None, seed: int = 0) -> torch.nn.Module:
    """``model`` carrying RED (``config``) with random non-identity vectors."""
    attach_red(model, config or RedConfig())
    swap_edits(model, random_vectors(model, seed))
    return model


def save_random_run(model: torch.nn.Module, directory, config: RedConfig | None = None, seed: int = 0):
    """Attach RED with random vectors to ``model``, save it as an edits folder, and return the folder."""
    with_random_red(model, config, seed)
    return save_red(model, directory)


def batches(count: int = 2, batch: int = 2, length: int = 8, seed: int = 3) -> list[dict[str, torch.Tensor]]:
    """Validation-style batches of random tokens: input_ids, attention_mask (last token of row 1 padded), labels."""
    generator = torch.Generator().manual_seed(seed)
    result = []
    for _ in range(count):
        input_ids = torch.randint(3, VOCAB, (batch, length), generator=generator)
        attention_mask = torch.ones_like(input_ids)
        attention_mask[-1, -1] = 0
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        result.append({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})
    return result


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(*args, check: bool = True) -> Result:
    """Run `red-explorer ARGS` in this process."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit:  # --help and argument errors
            code = exit.code or 0
    result = Result(code, stdout.getvalue(), stderr.getvalue())
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}: {result.stderr[-2000:]}")
    return result
