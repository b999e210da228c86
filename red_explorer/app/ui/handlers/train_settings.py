"""The Train tab's loop settings (epochs, max steps, batch size, seed, validation every N) as the browser keeps
them: a reload gives them back instead of the defaults."""

from __future__ import annotations

from red_explorer.app.ui.handlers.navigation import UNCHANGED

LOOP_KEYS = ("epochs", "max_steps", "batch_size", "seed", "eval_every")  # the order of the tab's loop inputs


def kept(*values) -> dict:
    """What the browser keeps after any of the settings changed: each setting by name."""
    return dict(zip(LOOP_KEYS, values, strict=True))


def restored(settings) -> tuple:
    """Page load: each setting as the browser kept it; one it did not keep (or that is not a number) stays."""
    if not isinstance(settings, dict):
        return (UNCHANGED,) * len(LOOP_KEYS)
    values = (settings.get(key) for key in LOOP_KEYS)
    number = (int, float)
    return tuple(value if isinstance(value, number) and not isinstance(value, bool) else UNCHANGED for value in values)
