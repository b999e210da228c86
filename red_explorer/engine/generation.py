"""Generating text side by side with several methods under identical decoding settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass

import torch
from torch import nn

from red_explorer.data.render import encode_prompt, render_prompt
from red_explorer.engine.compiled import check_compile_mode
from red_explorer.engine.compiled_generation import compiled_generation


@dataclass
class DecodingSettings:
    """The same decoding for every method (greedy by default).

    ``compile``: "" decodes eagerly (the default); a torch.compile mode decodes with a static KV cache and a
    compiled forward (``compiled_generation``): the same tokens, meant for a GPU, where a small model's decoding
    is bound by kernel launches.
    """

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    seed: int = 0
    compile: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 4096:
            raise ValueError(f"max_new_tokens must be between 1 and 4096, got {self.max_new_tokens}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise ValueError("temperature and repetition_penalty must be > 0 and top_p in (0, 1]")
        check_compile_mode(self.compile)

    def generate_kwargs(self) -> dict:
        kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample:
            kwargs |= {"temperature": self.temperature, "top_p": self.top_p}
        if self.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = self.repetition_penalty
        if self.no_repeat_ngram_size:
            kwargs["no_repeat_ngram_size"] = self.no_repeat_ngram_size
        return kwargs


@dataclass
class Contender:
    """A model to generate with; ``context`` switches it into this method's behaviour (e.g. base)."""

    label: str
    model: nn.Module
    context: Callable[[], AbstractContextManager] = nullcontext


@dataclass
class Generation:
    method: str
    prompt: str
    text: str
    new_tokens: int
    seconds: float
    tokens_per_second: float
    reference: str | None = None
    rouge_l: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def chat_prompt(tokenizer, text: str) -> str:
    """A user's text as training rendered prompts: its chat template with a generation prompt if the tokenizer
    has one, else the plain format 'text\\n' (exactly the prompt of {"prompt": text, "response": ...})."""
    return render_prompt(tokenizer, text)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 between a generation and its reference (rouge-score package)."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(reference, prediction)["rougeL"].fmeasure


@torch.no_grad()
def generate_one(contender: Contender, tokenizer, prompt: str, settings: DecodingSettings) -> Generation:
    """Generate for one formatted prompt; times the call."""
    model = contender.model
    device = next(model.parameters()).device
    input_ids = torch.tensor([encode_prompt(tokenizer, prompt)], device=device)  # (1, T), as training saw it
    encoded = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(settings.seed)
    with contender.context(), compiled_generation(model, settings.compile) as compiled:
        started = time.perf_counter()
        output = model.generate(**encoded, pad_token_id=pad, **settings.generate_kwargs(), **compiled)
        seconds = time.perf_counter() - started
    new_ids = output[0, encoded["input_ids"].shape[1] :]
    text = tokenizer.decode(new_ids, skip_special_tokens=True).strip()
    return Generation(contender.label, prompt, text, len(new_ids), seconds, len(new_ids) / seconds if seconds else 0.0)


def compare_generations(
    contenders: list[Contender],
    tokenizer,
    prompts: list[str],
    settings: DecodingSettings | None = None,
    references: list[str | None] | None = None,
) -> list[Generation]:
    """Every contender on every (already formatted) prompt, with ROUGE-L against references when given."""
    settings = settings or DecodingSettings()
    references = references or [None] * len(prompts)
    results = []
    for prompt, reference in zip(prompts, references, strict=True):
        for contender in contenders:
            generation = generate_one(contender, tokenizer, prompt, settings)
            if reference:
                generation.reference, generation.rouge_l = reference, rouge_l(generation.text, reference)
            results.append(generation)
    return results
