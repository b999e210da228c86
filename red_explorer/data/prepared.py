"""A user's data file made ready for training: read, detected, split, tokenised and batched."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from red_explorer.data.batching import length_grouped_batches, make_collator
from red_explorer.data.tables import load_table
from red_explorer.data.tokenize import tokenize_dataset


@dataclass
class PreparedData:
    """A user's file, read, detected, split and tokenised for one tokenizer."""

    raw: object  # datasets.DatasetDict with canonical columns
    detected: object  # data_formats.DetectedFormat
    tokenized: object  # datasets.DatasetDict of input_ids / attention_mask / labels
    dropped: dict[str, int]
    collator: object
    config: object = None  # the DataConfig it was read with (a run records it to be reproduced)

    def train_batches(self, batch_size: int, seed: int, pad_multiple: int = 1) -> list[dict[str, torch.Tensor]]:
        """One epoch's batches; each padded to a multiple of ``pad_multiple`` tokens (a compiled step's few shapes)."""
        split = self.tokenized["train"]
        lengths = [len(ids) for ids in split["input_ids"]]
        collate = replace(self.collator, multiple=pad_multiple) if pad_multiple > 1 else self.collator
        return [collate([split[i] for i in batch]) for batch in length_grouped_batches(lengths, batch_size, seed)]

    def validation_batches(self, batch_size: int) -> list[dict[str, torch.Tensor]]:
        split = self.tokenized["validation"]
        order = sorted(range(split.num_rows), key=lambda i: len(split[i]["input_ids"]))
        return [self.collator([split[i] for i in order[s : s + batch_size]]) for s in range(0, len(order), batch_size)]


def prepare_data(path, tokenizer, data_config, validation_path=None) -> PreparedData:
    """Read ``path`` (see data.load_table), tokenise it and build the padding collator."""
    raw, detected = load_table(path, data_config, validation_path)
    tokenized, dropped = tokenize_dataset(raw, detected, tokenizer, data_config)
    for name in ("train", "validation"):
        if tokenized[name].num_rows == 0:
            raise ValueError(f"no {name} example fits in max_length={data_config.max_length}; raise max_length")
    return PreparedData(raw, detected, tokenized, dropped, make_collator(tokenizer, data_config.task), data_config)
