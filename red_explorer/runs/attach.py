"""Putting a saved run back on a base model: its edits attached, or (full fine-tuning) its checkpoint loaded."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from red_explorer.core.heads import forget_head, keep_head, remember_head, restore_head, saved_head_modules
from red_explorer.core.registry import MethodSpec, detect_method, load_method


def attach_saved(model: nn.Module, folder: str | Path, spec: MethodSpec | None = None) -> tuple[nn.Module, MethodSpec]:
    """The model to use for the run saved in ``folder``, and its spec (``spec`` when given, else read back).

    RED and TARE attach to ``model`` itself and LoRA wraps it (``load_method``): pass a model nobody
    else uses meanwhile, and ``release`` it afterwards, which also gives back the base's classification
    head (a run's trained head replaces it while attached). A full fine-tuning run is a whole
    checkpoint: it is loaded from disk now, on ``model``'s device and dtype and with its hub kernels
    setting, and ``model`` is left untouched.
    """
    folder = Path(folder)
    if detect_method(folder) == "full":
        parameter = next(model.parameters())
        kernels = bool(getattr(model, "use_kernels", False))
        trained = type(model).from_pretrained(folder, dtype=parameter.dtype, use_kernels=kernels)
        trained = trained.to(parameter.device).eval()
        for weight in trained.parameters():
            weight.requires_grad_(False)
        return trained, spec or MethodSpec("full")
    head = keep_head(model, saved_head_modules(model, folder))
    try:
        trained, read_back = load_method(model, folder)
    except BaseException:
        restore_head(model, head)
        raise
    remember_head(trained, head)
    return trained.eval(), spec or read_back


def release(trained: nn.Module, spec: MethodSpec) -> None:
    """Undo ``attach_saved``: the base model is plain again, its own head back (a full checkpoint is simply dropped)."""
    if spec.entry.saves_whole_model:
        return
    head = forget_head(trained)
    base = spec.entry.detach(trained)
    if head is not None:
        restore_head(base, head)
