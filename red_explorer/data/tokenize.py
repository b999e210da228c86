"""Tokenising a detected table: prompt masking, chat templates, and the prompt and reference of a row."""

from __future__ import annotations

from typing import Any

from datasets import Dataset, DatasetDict

from red_explorer.data.batching import IGNORE_INDEX
from red_explorer.data.formats import Columns, DataError, DetectedFormat
from red_explorer.data.render import bos_prefix, eos_id, render_example, uses_template
from red_explorer.data.tables import DataConfig

CHUNK_ROWS = 2_000


def tokenize_dataset(
    dataset_dict: DatasetDict, detected: DetectedFormat, tokenizer: Any, config: DataConfig
) -> tuple[DatasetDict, dict[str, int]]:
    """Tokenise every split into input_ids, attention_mask and labels; also return {split: examples dropped}.

    causal-lm: labels are -100 on the prompt (template and user turn) and equal input_ids on the response,
    which ends with the end-of-sequence token (or the template's end of turn). Examples whose response is cut
    away entirely by `config.max_length` are dropped. classification: labels are ids into `detected.labels`.
    """
    if detected.task != config.task:
        raise DataError(f"the data was loaded for task {detected.task!r} but config.task is {config.task!r}")
    encode = _encode_classification if detected.task == "classification" else _encode_causal
    splits, dropped = {}, {}
    for name, split in dataset_dict.items():
        columns = encode(split, detected, tokenizer, config.max_length)
        dropped[name] = split.num_rows - len(columns["input_ids"])
        splits[name] = Dataset.from_dict(columns)
    return DatasetDict(splits), dropped


def _encode_classification(split: Dataset, detected: DetectedFormat, tokenizer: Any, max_length: int) -> Columns:
    label_ids = {name: index for index, name in enumerate(detected.labels)}
    inputs = ("sentence1", "sentence2") if detected.kind == "sentence pair/label" else ("text",)
    columns: Columns = {"input_ids": [], "attention_mask": []}
    for start in range(0, split.num_rows, CHUNK_ROWS):
        rows = split.select(range(start, min(start + CHUNK_ROWS, split.num_rows)))
        encoded = tokenizer(*[list(rows[name]) for name in inputs], truncation=True, max_length=max_length)
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            if name in encoded:
                columns.setdefault(name, []).extend(encoded[name])
    columns["labels"] = [label_ids[str(label)] for label in list(split["label"])]
    return columns


def _encode_causal(split: Dataset, detected: DetectedFormat, tokenizer: Any, max_length: int) -> Columns:
    """Prompt and completion are tokenised apart, so the loss mask falls exactly on their boundary."""
    templated = uses_template(tokenizer, detected)
    prefix, suffix = ([], []) if templated else (bos_prefix(tokenizer), [eos_id(tokenizer)])
    columns: Columns = {"input_ids": [], "attention_mask": [], "labels": []}
    for start in range(0, split.num_rows, CHUNK_ROWS):  # the tokenizer's per-text records live one chunk at a time
        rows = split.select(range(start, min(start + CHUNK_ROWS, split.num_rows)))
        pairs = [render_example(example, detected, tokenizer, templated) for example in rows]
        prompts = tokenizer([prompt for prompt, _ in pairs], add_special_tokens=False)["input_ids"]
        completions = tokenizer([completion for _, completion in pairs], add_special_tokens=False)["input_ids"]
        _add_causal(columns, prompts, completions, prefix, suffix, max_length)
    return columns


def _add_causal(columns: Columns, prompts, completions, prefix, suffix, max_length: int) -> None:
    for prompt_ids, completion_ids in zip(prompts, completions, strict=True):
        masked = prefix + list(prompt_ids)
        learned = list(completion_ids) + suffix
        input_ids = (masked + learned)[:max_length]
        labels = ([IGNORE_INDEX] * len(masked) + learned)[:max_length]
        if all(label == IGNORE_INDEX for label in labels):
            continue
        columns["input_ids"].append(input_ids)
        columns["attention_mask"].append([1] * len(input_ids))
        columns["labels"].append(labels)
