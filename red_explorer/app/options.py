"""What a user chose in the app: a training job (turned into the engine's TrainConfig), and the decoding."""

from __future__ import annotations

from dataclasses import dataclass

from red_explorer.choice.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_STEPS
from red_explorer.core.registry import MethodSpec
from red_explorer.engine.experiment import default_train_config
from red_explorer.engine.generation import DecodingSettings
from red_explorer.engine.training import TrainConfig, epochs_for

# The app's one decoding: Compare's defaults, Explore's generations and the demos' (greedy, a mild repetition penalty)
APP_DECODING = DecodingSettings(max_new_tokens=48, repetition_penalty=1.1)


def decoding_text(settings: DecodingSettings) -> str:
    """The decoding in words, as Compare and Explore show it: 'greedy · repetition penalty 1.1 · 48 new tokens'."""
    how = f"sampling at temperature {settings.temperature:g}" if settings.do_sample else "greedy"
    parts = [how, f"repetition penalty {settings.repetition_penalty:g}"]
    if settings.no_repeat_ngram_size:
        parts.append(f"no repeated {settings.no_repeat_ngram_size}-grams")
    return " · ".join([*parts, f"at most {settings.max_new_tokens} new tokens"])


@dataclass
class TrainOptions:
    """What the user chose for a training job; ``learning_rate`` None means the method's usual one."""

    learning_rate: float | None = None
    epochs: float = 1.0
    max_steps: int | None = DEFAULT_MAX_STEPS
    batch_size: int = DEFAULT_BATCH_SIZE
    max_length: int = 128
    seed: int = 0
    eval_every: int | None = 10

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max steps must be at least 1 (or empty for whole epochs), got {self.max_steps}")
        if self.max_length < 8:
            raise ValueError(f"max length must be at least 8 tokens, got {self.max_length}")
        if self.eval_every is not None and self.eval_every < 1:
            self.eval_every = None

    def train_config(self, spec: MethodSpec) -> TrainConfig:
        overrides = {"learning_rate": self.learning_rate} if self.learning_rate else {}
        return default_train_config(spec, **overrides, **self.loop_options())

    def loop_options(self) -> dict:
        """The loop's settings; max steps, when given, is the run's length (``epochs_for``)."""
        return {
            "epochs": epochs_for(self.epochs, self.max_steps),
            "max_steps": self.max_steps,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "eval_every": self.eval_every,
        }
