"""Compare as a reload finds it: the prompt, ticked runs and decoding the browser keeps, and the owner's last
generations (kept in the run store as they were shown: nothing is generated again)."""

from __future__ import annotations

import pandas as pd

from red_explorer.app.last_shown import recall_shown
from red_explorer.app.ui.handlers.common import ROW_COLOURS, Choices, run_choices
from red_explorer.app.ui.handlers.compare import TAB, TABLE_COLUMNS
from red_explorer.app.ui.handlers.navigation import UNCHANGED, number_or_unchanged
from red_explorer.app.ui.session import Session

DECODING = ("max_new_tokens", "do_sample", "temperature", "repetition_penalty", "no_repeat_ngram_size")
SETTINGS = ("prompt", "runs", *DECODING)  # the order of the inputs the browser keeps
MAX_PROMPT = 20_000  # characters: a longer prompt kept in the browser is not given back


def kept_compare(opened: bool, prompt: str, runs: list[str] | None, *decoding):
    """What the browser keeps after the prompt, the ticked runs or a decoding setting changed: each by name. Until
    the page load gave back what it kept (``opened``), nothing: a change the opening page made would overwrite it."""
    return dict(zip(SETTINGS, (prompt, runs, *decoding), strict=True)) if opened else UNCHANGED


def typed_compare(prompt: str, runs: list[str] | None, *decoding) -> dict:
    """What the browser keeps after the user changed a setting themselves (typed, ticked, set): kept at once, even
    while the page load has not given the kept settings back yet (no change of the app's own comes this way)."""
    return kept_compare(True, prompt, runs, *decoding)


def _decoding(settings: dict) -> tuple:
    """The decoding settings kept, each left as it is when it is not of its kind (a number; a yes/no to sample)."""
    sample = settings.get("do_sample")
    numbers = [number_or_unchanged(settings.get(name)) for name in DECODING]
    return (numbers[0], sample if isinstance(sample, bool) else UNCHANGED, *numbers[2:])


def _ticked(session: Session, runs) -> Choices | object:
    """This model's runs with the kept ticks that are still among them; unchanged when none was kept."""
    if not isinstance(runs, list) or not runs:
        return UNCHANGED
    listed = run_choices(session.workbench, other_models=False)
    ticked = [label for label in listed.choices if label in runs]
    return Choices(listed.choices, ticked, listed.names) if ticked else UNCHANGED


def _result(session: Session) -> tuple:
    """(prompt shown, cards, table) as Compare last showed them to this owner; unchanged when nothing was kept."""
    workbench = session.workbench
    kept = recall_shown(workbench.store.root, workbench.owner, TAB)
    texts = all(isinstance(kept.get(name), str) for name in ("shown", "cards"))
    if not texts or not isinstance(kept.get("rows"), list):
        return (UNCHANGED,) * 3
    table = pd.DataFrame(kept["rows"], columns=TABLE_COLUMNS)
    colours = kept.get("colours")
    if isinstance(colours, list) and len(colours) == len(table):
        table.attrs[ROW_COLOURS] = colours
    return kept["shown"], kept["cards"], table


def restore_compare(session: Session, settings) -> tuple:
    """Page load: (prompt, ticked runs, the five decoding settings, prompt shown, cards, table, opened): the settings
    as the browser kept them (one not kept, or of the wrong kind, stays as it is), the generations as last shown,
    and True: from now on a change is kept."""
    settings = settings if isinstance(settings, dict) else {}
    prompt = settings.get("prompt")
    prompt = prompt if isinstance(prompt, str) and len(prompt) <= MAX_PROMPT else UNCHANGED
    return (prompt, _ticked(session, settings.get("runs")), *_decoding(settings), *_result(session), True)
