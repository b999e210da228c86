"""Benchmark inputs: the model to measure (real or random-weight), its tokenizer, the shapes and repetitions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from red_explorer.data.bundled import TRAINING_SAMPLE
from red_explorer.models.loading import load_model, resolve_device, resolve_dtype

FALLBACK_CORPUS = [
    "RED edits a frozen transformer by learning one scale and one bias vector per layer.",
    "The restaurant serves Italian food near the river, prices are moderate and families are welcome.",
]
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]  # ids 0..3 in the local tokenizer

# Llama-family shapes built in code (random weights: no download; they time exactly like trained ones).
RANDOM_SHAPES = {
    "tiny": dict(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    ),
    "random:smollm2": dict(  # SmolLM2-135M
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
    "random:llama-7b": dict(  # Llama-2-7B
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    ),
}


@dataclass
class BenchModel:
    """The frozen model under test, in eval mode, with a tokenizer whose ids fit it."""

    model: nn.Module
    tokenizer: Any
    name: str
    description: str
    device: torch.device
    dtype: torch.dtype


@dataclass
class BenchShape:
    """Batch shapes and repetitions of one benchmark run.

    Every timed figure is the median of ``rounds × repeats`` runs; variants take turns round by round
    (reversed order every other round) and each turn starts with ``warmup`` untimed runs.
    """

    train_batch: int
    train_length: int
    generate_batch: int
    prompt_length: int
    new_tokens: int
    rounds: int
    repeats: int
    warmup: int
    swap_repeats: int
    engine_rows: int
    engine_max_length: int
    generate_rounds: int  # rounds of the generation sections: eager decoding is launch-bound, a GPU slot affords few
    generate_repeats: int
    engine_rounds: int = 3  # timed rounds of engine vs raw loop (after one warm-up round)
    distinct_edits: int = 8

    def __post_init__(self) -> None:
        if self.generate_batch < self.distinct_edits:
            raise ValueError(f"generate_batch must hold one row per distinct edit ({self.distinct_edits})")


QUICK_SHAPE = dict(train_batch=2, train_length=16, generate_batch=8, prompt_length=8, new_tokens=4)
CPU_SHAPE = dict(train_batch=4, train_length=64, generate_batch=8, prompt_length=16, new_tokens=16)
GPU_SHAPE = dict(train_batch=8, train_length=512, generate_batch=8, prompt_length=128, new_tokens=64)


def choose_shape(device: torch.device, quick: bool, model_name: str) -> BenchShape:
    """Small shapes for ``--quick`` smoke runs, CPU-sized ones, or GPU-sized ones."""
    if quick:
        repetitions = dict(rounds=2, repeats=1, warmup=1, swap_repeats=5, engine_rounds=1)
        generation = dict(generate_rounds=2, generate_repeats=1)
        return BenchShape(**QUICK_SHAPE, **repetitions, **generation, engine_rows=24, engine_max_length=128)
    if device.type == "cuda":
        sizes = GPU_SHAPE | ({"train_batch": 4} if model_name == "random:llama-7b" else {})
        repetitions = dict(rounds=5, repeats=3, warmup=2, swap_repeats=50, engine_rounds=3)
        generation = dict(generate_rounds=2, generate_repeats=1)  # ~30 generate calls: under a minute on an H200
        return BenchShape(**sizes, **repetitions, **generation, engine_rows=300, engine_max_length=256)
    repetitions = dict(rounds=7, repeats=1, warmup=1, swap_repeats=30, engine_rounds=5)
    generation = dict(generate_rounds=7, generate_repeats=1)
    return BenchShape(**CPU_SHAPE, **repetitions, **generation, engine_rows=32, engine_max_length=128)


def corpus_lines() -> list[str]:
    """Text of the bundled E2E sample (for local tokenizers), or two fallback sentences."""
    if TRAINING_SAMPLE.is_file():
        return TRAINING_SAMPLE.read_text(encoding="utf-8").splitlines()[1:]
    return FALLBACK_CORPUS


def local_tokenizer(vocab_size: int):
    """A byte-level-free BPE trained on the bundled sample: ids < ``vocab_size``, no download."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=min(vocab_size, 1000), special_tokens=SPECIAL_TOKENS)
    backend.train_from_iterator(corpus_lines(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def random_model(name: str, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A Llama of a known shape with random weights, built directly on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**RANDOM_SHAPES[name], bos_token_id=1, eos_token_id=2, pad_token_id=3)
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    model.generation_config.pad_token_id = 3
    return model


def load_bench_model(name: str, device: str = "auto", dtype: str = "auto", quantize: str | None = None) -> BenchModel:
    """'tiny', 'random:smollm2', 'random:llama-7b' (random weights), or anything ``load_model`` takes."""
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    if quantize and (name in RANDOM_SHAPES or name.startswith("random:")):
        raise ValueError(f"--quantize applies to a loaded model, not to the random {name!r}; pass a folder or hub id")
    if name in RANDOM_SHAPES:
        model = random_model(name, torch_device, torch_dtype)
        tokenizer = local_tokenizer(model.config.vocab_size)
        weights = "random weights"
    elif name.startswith("random:"):
        raise ValueError(f"unknown random model {name!r}; use one of {sorted(RANDOM_SHAPES)}")
    else:
        loaded = load_model(name, device=device, dtype=dtype, quantize=quantize)
        model, tokenizer, weights = loaded.model, loaded.tokenizer, "pretrained weights"
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    count = sum(parameter.numel() for parameter in model.parameters())
    description = f"{type(model).__name__}, {count / 1e6:.1f}M parameters, {weights}, {str(torch_dtype)[6:]}"
    return BenchModel(model, tokenizer, name, description, torch_device, torch_dtype)


def token_batch(bench: BenchModel, batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids (never special tokens) as a causal-LM batch with labels: (B, T) each."""
    generator = torch.Generator().manual_seed(seed)
    high = min(bench.model.config.vocab_size, len(bench.tokenizer))
    input_ids = torch.randint(len(SPECIAL_TOKENS), high, (batch, length), generator=generator)
    batch_tensors = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": input_ids.clone()}
    return {key: value.to(bench.device) for key, value in batch_tensors.items()}
