"""The Train tab's loop settings (epochs, max steps, batch size, seed, validation every N) and its Layers box as the
browser keeps them: a reload gives them back instead of the defaults."""

from __future__ import annotations

from red_explorer.app.ui.handlers.navigation import UNCHANGED, number_or_unchanged

LOOP_KEYS = ("epochs", "max_steps", "batch_size", "seed", "eval_every")  # the order of the tab's loop inputs
KEPT_KEYS = (*LOOP_KEYS, "layers")  # then the layers RED and TARE edit (text, e.g. "last:8")
MAX_LAYERS_TEXT = 200  # characters: a longer text kept in the browser is not one the box made


def kept(*values) -> dict:
    """What the browser keeps after any of the settings changed: each setting by name."""
    return dict(zip(KEPT_KEYS, values, strict=True))


def restored(settings) -> tuple:
    """Page load: each setting as the browser kept it; one it did not keep (or of the wrong kind) stays."""
    if not isinstance(settings, dict):
        return (UNCHANGED,) * len(KEPT_KEYS)
    layers = settings.get("layers")
    layers = layers if isinstance(layers, str) and len(layers) <= MAX_LAYERS_TEXT else UNCHANGED
    return (*(number_or_unchanged(settings.get(key)) for key in LOOP_KEYS), layers)
