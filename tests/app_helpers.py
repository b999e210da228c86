"""Shared pieces of the app tests: a tiny saved model folder, small data files, a launched app."""

from __future__ import annotations

import csv
import socket
from pathlib import Path

import torch
import transformers as tf
from tiny_models import DECODER, tiny_tokenizer

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
