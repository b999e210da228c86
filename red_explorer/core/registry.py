"""The method registry: every fine-tuning method by name, the spec that picks one, and dispatch over them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from torch import nn

from red_explorer.core.adapters import model_adapter_kind
from red_explorer.core.bitfit.method import Bitfit
from red_explorer.core.checkpoint import CONFIG_FILE, EditsFileError
from red_explorer.core.dora.method import Dora
from red_explorer.core.full.method import Full
from red_explorer.core.ia3.method import Ia3
from red_explorer.core.lntuning.method import LnTuning
from red_explorer.core.lora.method import Lora
from red_explorer.core.loreft.method import Loreft
from red_explorer.core.method import Method, unfreeze
from red_explorer.core.red.method import Red
from red_explorer.core.state import attached_state
from red_explorer.core.tare.method import Tare
from red_explorer.models.quantization import is_quantized

REGISTRY: dict[str, Method] = {
    method.name: method
    for method in (
        Red(),
        Tare(),
        Lora(),
        Full(),
        Ia3(),
        Dora(),
        LnTuning(),
        Bitfit(),
        Loreft(),
    )
}
METHODS = tuple(REGISTRY)
DEFAULT_LEARNING_RATES = {name: method.default_learning_rate for name, method in REGISTRY.items()}


def get_method(name: str) -> Method:
    """The registered method called ``name``, or a ValueError that lists them."""
    if name not in REGISTRY:
        raise ValueError(f"method must be one of {METHODS}, got {name!r}")
    return REGISTRY[name]


class MethodSpec:
    """One way of fine-tuning: a method and its options; a row of an ablation, a --method on the CLI.

    ``MethodSpec("red", variant="bias", sites=["ffn", "attn"])``; the options are validated by the
    method's options dataclass and readable as attributes (``spec.variant``).
    """

    def __init__(self, method: str = "red", **options):
        self.method = method
        self.options = get_method(method).options(**options)

    @property
    def entry(self) -> Method:
        return REGISTRY[self.method]

    def __getattr__(self, name: str):
        if name in ("method", "options"):
            raise AttributeError(name)
        try:
            return getattr(self.options, name)
        except AttributeError:
            raise AttributeError(f"{self.entry.title} has no option {name!r}") from None

    def __eq__(self, other) -> bool:
        return isinstance(other, MethodSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"MethodSpec({self.method!r}, {self.options!r})"

    @property
    def label(self) -> str:
        """A short human name: 'RED full (ffn)', 'LoRA r=8', 'TARE E=4 k=2 (ffn)', 'full fine-tuning'."""
        return self.entry.label(self.options)

    def to_dict(self) -> dict:
        return {"method": self.method} | asdict(self.options)

    @classmethod
    def from_dict(cls, data: dict) -> MethodSpec:
        options = {key: value for key, value in data.items() if key != "method"}
        return cls(data.get("method", "red"), **options)


def apply_method(model: nn.Module, spec: MethodSpec, task: str, head_parameter_names=()) -> nn.Module:
    """Make ``model`` trainable by ``spec`` (mutates it); returns the model to train (PEFT wraps it)."""
    refusal = spec.entry.quantized_base_refusal
    if refusal and is_quantized(model):
        raise ValueError(
            f"{spec.entry.title} cannot train on a quantized base: {refusal}. "
            "Load the base without quantization, or choose RED, TARE, LoRA, DoRA, IA3 or LoReFT."
        )
    trained = spec.entry.attach(model, spec.options, task, head_parameter_names)
    if trained is model:  # a wrapper (PEFT) trains the head through its own modules_to_save
        unfreeze(model, head_parameter_names)
    return trained


@contextmanager
def base_behaviour(model: nn.Module, spec: MethodSpec) -> Iterator[None]:
    """Inside this block the trained model behaves as its base model (full fine-tuning cannot)."""
    with spec.entry.disabled(model):
        yield


def save_method(model: nn.Module, spec: MethodSpec, directory: str | Path, base_model=None, head_parameter_names=()):
    """Write the trained method in its own format (RED/TARE edits, a PEFT adapter, a full checkpoint)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return spec.entry.save(model, directory, base_model, head_parameter_names)


def detect_method(directory: str | Path) -> str:
    """Which registered method a saved directory holds."""
    directory = Path(directory)
    for name, method in REGISTRY.items():
        if method.holds(directory):
            return name
    raise EditsFileError(f"{directory} holds no edits: expected {CONFIG_FILE} (RED/TARE) or adapter_config.json (LoRA)")


def load_method(model: nn.Module, directory: str | Path) -> tuple[nn.Module, MethodSpec]:
    """Attach what a saved directory holds to a fresh base model; the spec is read from the files."""
    method = get_method(detect_method(directory))
    trained, options = method.load(model, Path(directory))
    spec = MethodSpec(method.name, **asdict(options))
    return trained, spec


def attached_method(model: nn.Module) -> Method:
    """The method a model was trained or loaded with (a plain model counts as full fine-tuning)."""
    kind = model_adapter_kind(model)
    if kind is not None:
        return REGISTRY[kind]
    state = attached_state(model)
    return REGISTRY[state.method] if state is not None else REGISTRY["full"]


def save_edits(model: nn.Module, directory: str | Path, base_model: str | None = None, head_parameter_names=()):
    """Save the edit the model carries (RED, TARE, a LoRA adapter) in its method's format.

    ``base_model`` names the base (default: the model config's name or path); the folder also records
    the base's hub revision and a hash of its config.
    """
    method = attached_method(model)
    if method.saves_whole_model:
        raise ValueError("this model carries no edits: attach_red / attach_tare (or train a method) first")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return method.save(model, directory, base_model, head_parameter_names)


def load_edits(model: nn.Module, directory: str | Path):
    """Attach the edits saved in ``directory`` to ``model``, by the method recorded there; returns its config.

    RED returns its ``RedConfig`` and TARE its ``TareConfig``; both edit ``model`` in place. A LoRA
    adapter wraps the model instead: load it with ``load_method``.
    """
    return get_method(detect_method(directory)).load_in_place(model, Path(directory))


def merge_and_unload(model: nn.Module) -> nn.Module:
    """A plain transformers model with the attached method folded into its weights (MergeError says why not)."""
    return attached_method(model).merge_and_unload(model)
