"""Shared by the data-layer tests: a tiny exact byte-level tokenizer, chat templates, and rows written to files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SAMPLES = Path(__file__).resolve().parents[1] / "red_explorer" / "samples"
SPECIALS = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", "[CLS]", "[SEP]", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "What is the capital of France? Paris is the capital.",
    "Write one sentence about a cat. The cat sat on the mat.",
    "The film was wonderful and the meal was awful.",
    "hello world, how are you today? I am fine, thanks.",
]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}<|assistant|>{{ message['content'] }}{{ eos_token }}"
    "{% else %}<|user|>{{ message['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

CHATML_TEMPLATE = (  # the shape of SmolLM2-Instruct's template: a default system turn, turns end with <|im_end|>\n
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}<|im_start|>system\nBe helpful.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(*, chat: bool = False, bos: bool = False, pairs: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on a few sentences: decoding gives back the exact text."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(CORPUS, trainer)
    if bos:
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    if pairs:
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", 5), ("[SEP]", 6)],
        )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def write(path: Path, rows: list[dict]) -> Path:
    """Write rows in the format implied by the path's extension."""
    suffix = path.suffix
    if suffix in (".csv", ".tsv"):
        pd.DataFrame(rows).to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    elif suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    return path


def pairs(count: int = 10) -> list[dict]:
    return [{"prompt": f"question {index}", "response": f"answer {index}"} for index in range(count)]
