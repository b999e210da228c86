"""Explore as a reload finds it: the runs, prompt and arithmetic settings the browser keeps, and the owner's last
results (cards, text, token strip, plots, kept in the run store as they were shown: nothing is computed again)."""

from __future__ import annotations

import plotly.io

from red_explorer.app.exploring import OPERATIONS
from red_explorer.app.last_shown import recall_shown
from red_explorer.app.ui.handlers.explore import TAB, choices
from red_explorer.app.ui.handlers.navigation import UNCHANGED, number_or_unchanged
from red_explorer.app.ui.session import Session

SETTINGS = ("run", "first", "second", "prompt", "tokens", "operation", "weight_first", "weight_second")
TEXTS = ("base_card", "run_card", "generated", "strip", "status")  # the results kept as text
FIGURES = ("dose_plot", "layers_plot")  # the results kept as plotly JSON
MAX_TEXT = 20_000  # characters: a longer prompt kept in the browser is not given back


def kept_explore(opened: bool, *values):
    """What the browser keeps after a run, the prompt, the new tokens or an arithmetic setting changed: by name.
    Until the page load gave back what it kept (``opened``), nothing: the opening page sets the runs itself."""
    return dict(zip(SETTINGS, values, strict=True)) if opened else UNCHANGED


def typed_explore(*values) -> dict:
    """What the browser keeps after the user changed a setting themselves: kept at once, even while the page load
    has not given the kept settings back yet (no change of the app's own comes this way)."""
    return kept_explore(True, *values)


def _settings(settings: dict) -> tuple:
    """(prompt, new tokens, operation, weight of A, weight of B) as kept; each left as it is when not of its kind."""
    prompt, operation = settings.get("prompt"), settings.get("operation")
    prompt = prompt if isinstance(prompt, str) and len(prompt) <= MAX_TEXT else UNCHANGED
    operation = operation if operation in OPERATIONS else UNCHANGED
    tokens, first, second = (number_or_unchanged(settings.get(name)) for name in SETTINGS[4:5] + SETTINGS[6:])
    return prompt, tokens, operation, first, second


def _results(session: Session) -> tuple:
    """The results in ``TEXTS`` then ``FIGURES`` order as last shown to this owner; unchanged where none was kept."""
    workbench = session.workbench
    kept = recall_shown(workbench.store.root, workbench.owner, TAB)
    texts = tuple(kept[name] if isinstance(kept.get(name), str) else UNCHANGED for name in TEXTS)
    figures = []
    for name in FIGURES:
        try:
            figures.append(plotly.io.from_json(kept[name]))
        except (KeyError, TypeError, ValueError):
            figures.append(UNCHANGED)
    return (*texts, *figures)


def restore_explore(session: Session, settings) -> tuple:
    """Page load: (run, run A, run B, prompt, new tokens, operation, weight of A, weight of B, then the results in
    ``TEXTS`` and ``FIGURES`` order, then True: from now on a change is kept). Each run as kept when this model
    still lists it (else left for the tab to choose as it opens), the other settings as the browser kept them, the
    results as last shown."""
    settings = settings if isinstance(settings, dict) else {}
    picked = [settings.get(name) if isinstance(settings.get(name), str) else None for name in SETTINGS[:3]]
    listed = choices(session, *picked)
    pairs = zip(listed, picked, strict=True)
    runs = tuple(choice if kept and choice.value == kept else UNCHANGED for choice, kept in pairs)
    return (*runs, *_settings(settings), *_results(session), True)
