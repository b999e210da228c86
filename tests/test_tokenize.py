"""Tests of tokenisation (what the loss covers), classification labels, collation and batching."""

from __future__ import annotations

import json

import pytest
import torch
from data_helpers import CHATML_TEMPLATE, build_tokenizer, pairs, write

from red_explorer.data.batching import length_grouped_batches, make_collator
from red_explorer.data.render import prompt_text, prompt_token_ids, reference_text
from red_explorer.data.tables import DataConfig, DataError, load_table
from red_explorer.data.tokenize import tokenize_dataset

# ---------------------------------------------------------------- causal-lm tokenisation


def tokenized_first(folder, tokenizer, rows, max_length=256):
    config = DataConfig(max_length=max_length, validation_fraction=0.5)
    splits, detected = load_table(write(folder / "d.jsonl", rows), config)
    tokenized, dropped = tokenize_dataset(splits, detected, tokenizer, config)
    return splits["train"][0], tokenized["train"][0], detected, dropped


def masked_length(labels: list[int]) -> int:
    return next(index for index, label in enumerate(labels) if label != -100)


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat-template"])
def test_loss_covers_exactly_the_response_and_eos(tmp_path, chat):
    tokenizer = build_tokenizer(chat=chat, bos=not chat)
    rows = [{"prompt": f"What is the capital of France? ({i})", "response": "Paris is the capital."} for i in range(4)]
    example, encoded, detected, dropped = tokenized_first(tmp_path, tokenizer, rows)
    cut = masked_length(encoded["labels"])
    assert all(label == -100 for label in encoded["labels"][:cut])
    assert encoded["labels"][cut:] == encoded["input_ids"][cut:]
    assert tokenizer.decode(encoded["labels"][cut:]) == "Paris is the capital.</s>"
    expected_prompt = f"<|user|>{example['prompt']}\n<|assistant|>" if chat else f"<s>{example['prompt']}\n"
    assert tokenizer.decode(encoded["input_ids"][:cut]) == expected_prompt
    assert encoded["input_ids"][:cut] == prompt_token_ids(example, detected, tokenizer)
    assert prompt_text(example, detected, tokenizer) == expected_prompt.removeprefix("<s>")
    assert reference_text(example, detected) == "Paris is the capital."
    assert encoded["attention_mask"] == [1] * len(encoded["input_ids"])
    assert dropped == {"train": 0, "validation": 0}


def test_chatml_template_masks_the_system_and_user_turns(tmp_path):
    tokenizer = build_tokenizer()
    tokenizer.chat_template = CHATML_TEMPLATE
    rows = [{"question": "What is the capital of France?", "answer": "Paris is the capital."}] * 4
    example, encoded, detected, _ = tokenized_first(tmp_path, tokenizer, rows)
    cut = masked_length(encoded["labels"])
    assert tokenizer.decode(encoded["input_ids"][:cut]) == (
        "<|im_start|>system\nBe helpful.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert tokenizer.decode(encoded["labels"][cut:]) == "Paris is the capital.<|im_end|>\n"
    assert encoded["input_ids"][:cut] == prompt_token_ids(example, detected, tokenizer)


def test_messages_stored_as_json_strings_in_a_csv_are_parsed(tmp_path):
    conversation = [{"role": "User", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    path = write(tmp_path / "chat.csv", [{"messages": json.dumps(conversation)}] * 4)
    splits, detected = load_table(path, DataConfig())
    assert detected.kind == "messages"
    assert splits["train"][0]["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]


def test_instruction_and_input_form_the_user_turn(tmp_path):
    tokenizer = build_tokenizer(chat=True)
    rows = [{"instruction": "Write one sentence", "input": "about a cat", "output": "The cat sat."}] * 4
    example, encoded, detected, _ = tokenized_first(tmp_path, tokenizer, rows)
    assert prompt_text(example, detected, tokenizer) == "<|user|>Write one sentence\n\nabout a cat\n<|assistant|>"
    assert tokenizer.decode([t for t in encoded["labels"] if t != -100]) == "The cat sat.</s>"


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat-template"])
def test_messages_learn_only_the_final_assistant_turn(tmp_path, chat):
    tokenizer = build_tokenizer(chat=chat)
    conversation = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hello world"},
        {"role": "user", "content": "how are you?"},
        {"role": "assistant", "content": "I am fine."},
    ]
    example, encoded, detected, _ = tokenized_first(tmp_path, tokenizer, [{"messages": conversation}] * 4)
    cut = masked_length(encoded["labels"])
    assert tokenizer.decode(encoded["labels"][cut:]) == "I am fine.</s>"
    expected = (
        "<|user|>hello\n<|assistant|>hello world</s><|user|>how are you?\n<|assistant|>"
        if chat
        else "user: hello\nassistant: hello world\nuser: how are you?\n"
    )
    assert tokenizer.decode(encoded["input_ids"][:cut]) == expected
    assert reference_text(example, detected) == "I am fine."


def test_text_kind_learns_every_token(tmp_path):
    tokenizer = build_tokenizer(chat=True, bos=True)
    example, encoded, detected, _ = tokenized_first(tmp_path, tokenizer, [{"text": "The film was wonderful."}] * 4)
    assert encoded["labels"][0] == -100 and encoded["input_ids"][0] == tokenizer.bos_token_id
    assert encoded["labels"][1:] == encoded["input_ids"][1:]
    assert tokenizer.decode(encoded["labels"][1:]) == "The film was wonderful.</s>"
    assert prompt_text(example, detected, tokenizer) == "The film"
    assert reference_text(example, detected) == "was wonderful."


def test_truncation_keeps_max_length_and_drops_examples_without_response(tmp_path):
    tokenizer = build_tokenizer()
    long_prompt = " ".join(["hello world how are you today"] * 10)
    rows = [{"prompt": long_prompt if i % 2 else "hi", "response": "Paris is the capital."} for i in range(8)]
    config = DataConfig(max_length=10, validation_fraction=0.5)
    splits, detected = load_table(write(tmp_path / "d.jsonl", rows), config)
    tokenized, dropped = tokenize_dataset(splits, detected, tokenizer, config)
    kept = tokenized["train"].num_rows + tokenized["validation"].num_rows
    assert kept == 4 and sum(dropped.values()) == 4
    assert all(len(ids) <= 10 for ids in list(tokenized["train"]["input_ids"]))
    assert all(any(label != -100 for label in labels) for labels in list(tokenized["train"]["labels"]))


def test_tokenize_refuses_a_task_mismatch(tmp_path):
    splits, detected = load_table(write(tmp_path / "d.csv", pairs()), DataConfig())
    with pytest.raises(DataError, match="loaded for task 'causal-lm' but config.task is 'classification'"):
        tokenize_dataset(splits, detected, build_tokenizer(), DataConfig(task="classification"))


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("labels", "names"),
    [(["positive", "negative", "neutral"], ["negative", "neutral", "positive"]), ([10, 2, 1], ["1", "2", "10"])],
    ids=["string-labels", "int-labels"],
)
def test_classification_labels_map_to_sorted_ids(tmp_path, labels, names):
    rows = [{"text": f"text number {i}", "label": labels[i % 3]} for i in range(12)]
    config = DataConfig(task="classification", validation_fraction=0.25)
    splits, detected = load_table(write(tmp_path / "d.csv", rows), config)
    tokenized, _ = tokenize_dataset(splits, detected, build_tokenizer(), config)
    assert detected.labels == names
    for name in ("train", "validation"):
        expected = [names.index(str(label)) for label in splits[name]["label"]]
        assert list(tokenized[name]["labels"]) == expected
    assert reference_text(splits["train"][0], detected) in names


def test_sentence_pairs_are_tokenised_as_pairs(tmp_path):
    rows = [{"sentence1": "hello world", "sentence2": "the cat", "label": i % 2} for i in range(4)]
    config = DataConfig(task="classification", validation_fraction=0.5)
    splits, detected = load_table(write(tmp_path / "d.jsonl", rows), config)
    tokenizer = build_tokenizer(pairs=True)
    tokenized, _ = tokenize_dataset(splits, detected, tokenizer, config)
    assert tokenizer.decode(tokenized["train"][0]["input_ids"]) == "[CLS]hello world[SEP]the cat[SEP]"
    assert prompt_text(splits["train"][0], detected, tokenizer) == "hello world\nthe cat"


# ---------------------------------------------------------------- collation and batching


def test_collator_pads_causal_batches_dynamically():
    collate = make_collator(build_tokenizer(), "causal-lm")
    features = [
        {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7]},
        {"input_ids": [8], "attention_mask": [1], "labels": [8]},
    ]
    batch = collate(features)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["input_ids"].dtype == torch.long


def test_collator_stacks_classification_labels_and_falls_back_to_eos_padding():
    tokenizer = build_tokenizer(pairs=True)
    tokenizer.pad_token = None
    collate = make_collator(tokenizer, "classification")
    features = [
        {"input_ids": [5, 9], "attention_mask": [1, 1], "token_type_ids": [0, 1], "labels": 1},
        {"input_ids": [5, 9, 9, 6], "attention_mask": [1, 1, 1, 1], "token_type_ids": [0, 0, 1, 1], "labels": 0},
    ]
    batch = collate(features)
    assert batch["input_ids"].tolist() == [[5, 9, 2, 2], [5, 9, 9, 6]]
    assert batch["token_type_ids"].tolist() == [[0, 1, 0, 0], [0, 0, 1, 1]]
    assert batch["labels"].tolist() == [1, 0]


def test_length_grouped_batches_cover_every_index_once_and_are_seeded():
    lengths = [(index * 37) % 101 for index in range(1000)]
    batches = length_grouped_batches(lengths, batch_size=8, seed=0)
    flat = [index for batch in batches for index in batch]
    assert sorted(flat) == list(range(1000))
    assert len(batches) == 125 and all(1 <= len(batch) <= 8 for batch in batches)
    assert batches == length_grouped_batches(lengths, batch_size=8, seed=0)
    assert batches != length_grouped_batches(lengths, batch_size=8, seed=1)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 5  # sorted within chunks: neighbours in a batch have similar lengths


def test_length_grouped_batches_refuse_a_zero_batch_size():
    with pytest.raises(DataError, match="batch_size must be at least 1"):
        length_grouped_batches([1, 2, 3], batch_size=0, seed=0)
