"""Shared pieces of the app tests: a tiny saved model folder, small data files, a launched app."""

from __future__ import annotations

import csv
import socket
from pathlib import Path

import torch
import transformers as tf
from tiny_models import DECODER, tiny_tokenizer

from red_explorer.app.options import TrainOptions

TRAIN = dict(max_steps=3, batch_size=8, max_length=64, eval_every=2)  # a short training job of the handler tests
QUICK = TrainOptions(max_steps=1, max_length=64, batch_size=8, eval_every=None)  # one step, for a run to exist
WORDS = "red blue green cat dog bird small big happy sad runs jumps sings the a".split()


def tiny_rows(count: int = 40, seed: int = 0) -> list[dict[str, str]]:
    """Short prompt/response pairs a tiny model can learn: the response repeats a word of the prompt."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(count):
        picks = [WORDS[int(i)] for i in torch.randint(0, len(WORDS), (3,), generator=generator)]
        rows.append({"prompt": " ".join(picks), "response": f"{picks[1]} {picks[1]}"})
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def save_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """A random 2-layer Llama (hidden 32) with a word-level tokenizer, saved like a hub checkpoint."""
    torch.manual_seed(seed)
    config = tf.LlamaConfig(**(DECODER | {"max_position_embeddings": 256}))
    model = tf.LlamaForCausalLM(config)
    model.config.architectures = ["LlamaForCausalLM"]
    corpus = [" ".join(WORDS)] * 4 + [f"{row['prompt']} {row['response']}" for row in tiny_rows(60)]
    tokenizer = tiny_tokenizer(corpus)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_app_files(folder: Path) -> tuple[Path, Path]:
    """A tiny Llama folder and a 40-row CSV of prompt/response pairs: what most app tests load."""
    return save_tiny_llama(folder / "model"), write_csv(folder / "words.csv", tiny_rows(40))


def new_session(files: tuple[Path, Path]):
    """A browser session of the app with the tiny model and its data loaded through the handlers."""
    from red_explorer.app.model_registry import ModelRegistry
    from red_explorer.app.ui.handlers import data, model
    from red_explorer.app.ui.session import Session
    from red_explorer.app.workbench import Workbench

    session = Session(Workbench(ModelRegistry()))
    model.load_model(session, str(files[0]), "causal-lm", "auto", "auto")
    data.load_data(session, str(files[1]), None, 0.1, 0, 64)
    return session


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
