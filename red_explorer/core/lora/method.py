"""LoRA (through PEFT) as an entry of the method registry: W' = W + (alpha / r) · B · A on chosen projections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from red_explorer.core.adapters import PeftAdapter, listed


@dataclass
class LoraOptions:
    """The rank, scaling and targets of the low-rank update."""

    method: ClassVar[str] = "LoRA"  # the name error messages use
    rank: int = field(default=8, metadata={"help": "r: rank of B·A"})
    alpha: int = field(default=16, metadata={"help": "scaling numerator: the update is (alpha / r) · B·A"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the low-rank input"})
    target_modules: str | list[str] | None = field(
        default=None, metadata={"help": "None: PEFT's LoRA projections for this family (attention)"}
    )

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"{self.method} rank must be a positive integer, got {self.rank!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) or self.alpha <= 0:
            raise ValueError(
                f"{self.method} alpha must be a positive number (16 = twice the default rank), got {self.alpha!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{self.method} dropout must be in [0, 1), got {self.dropout!r}")


class Lora(PeftAdapter):
    """LoRA: W' = W + (alpha / r) · B·A on the chosen projections; A (r, in) random, B (out, r) zero at the start."""

    name = "lora"
    title = "LoRA"
    options = LoraOptions
    marker = "lora_"
    use_dora = False  # DoRA is this adapter with PEFT's weight decomposition switched on
    # best of the measured sweep (benchmarks/method_choice/pirate_style, SmolLM2-135M)
    default_learning_rate = 9e-3

    def label(self, options: LoraOptions) -> str:
        return f"{self.title} r={options.rank}"

    def peft_config(self, model: nn.Module, options: LoraOptions, task_type: str, heads: list[str] | None):
        from peft import LoraConfig

        return LoraConfig(
            r=options.rank,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            target_modules=options.target_modules,
            use_dora=self.use_dora,
            task_type=task_type,
            modules_to_save=heads,
        )

    def options_from(self, adapter: dict) -> LoraOptions:
        return self.options(
            rank=adapter.get("r", 8),
            alpha=adapter.get("lora_alpha", 16),
            dropout=adapter.get("lora_dropout", 0.0),
            target_modules=listed(adapter.get("target_modules")),
        )
