"""The interface every fine-tuning method implements: one object per method in the registry."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from torch import nn


class MergeError(ValueError):
    """What a method trained cannot be folded into the model's weights exactly."""


class Method:
    """A way of fine-tuning a frozen base model (RED, TARE, LoRA, full fine-tuning, ...).

    Subclasses set the class attributes and implement the methods; code that needs "every method"
    iterates the registry (``red_explorer.core.registry.METHODS``) instead of branching on names.
    """

    name: str  # registry key and CLI --method value
    title: str  # a human name: "RED"
    options: type  # dataclass of the method's settings (validated in __post_init__)
    default_learning_rate: float
    saves_whole_model: bool = False  # True: what it trains is the whole model, not a small edit
    quantized_base_refusal: str = ""  # why it cannot train on a quantized base ("" = it can)

    def label(self, options) -> str:
        """A short human name of one configuration: 'RED full (ffn)', 'LoRA r=8'."""
        raise NotImplementedError

    def attach(self, model: nn.Module, options, task: str, head_parameter_names=()) -> nn.Module:
        """Make ``model`` trainable by this method (mutates it); returns the model to train."""
        raise NotImplementedError

    def parameter_count(self, model: nn.Module) -> int:
        """The number of parameters this method added or trains (heads excluded)."""
        raise NotImplementedError

    def disabled(self, model: nn.Module) -> AbstractContextManager:
        """A block inside which the trained model computes exactly its base model's outputs."""
        raise ValueError(f"{self.title} has no base behaviour to switch back to: load the base model")

    def detach(self, model: nn.Module) -> nn.Module:
        """Remove the method from ``model``; returns the base model."""
        raise ValueError(f"{self.title} cannot be removed from the model: load the base model again")

    def save(self, model: nn.Module, directory: Path, base_model: str | None, head_parameter_names) -> Path:
        """Write what was trained into ``directory`` in this method's own format."""
        raise NotImplementedError

    def holds(self, directory: Path) -> bool:
        """Whether ``directory`` holds this method's files."""
        raise NotImplementedError

    def load(self, model: nn.Module, directory: Path) -> tuple[nn.Module, object]:
        """Attach what ``directory`` holds to ``model`` (a fresh base); returns (model to use, options)."""
        raise NotImplementedError

    def load_in_place(self, model: nn.Module, directory: Path):
        """Attach what ``directory`` holds to ``model`` itself; returns the edit's config."""
        raise ValueError(
            f"{directory} holds a {self.title} checkpoint, which does not attach in place: "
            "use load_method(model, directory), which returns the model to use"
        )

    def merge_and_unload(self, model: nn.Module) -> nn.Module:
        """A plain transformers model with the method folded into its weights; MergeError says why not."""
        raise NotImplementedError


def unfreeze(model: nn.Module, names) -> None:
    """Make the named parameters (a new classification head) trainable."""
    parameters = dict(model.named_parameters())
    for name in names:
        parameters[name].requires_grad_(True)
