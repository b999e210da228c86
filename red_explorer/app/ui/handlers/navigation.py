"""Plain markers that move the page: switch to a tab, or leave an output as it is (the UI turns them into updates)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SelectTab:
    """Show the tab whose id is ``tab`` (e.g. "compare")."""

    tab: str


@dataclass(frozen=True)
class Unchanged:
    """Leave this output as it is."""


UNCHANGED = Unchanged()


def number_or_unchanged(value):
    """``value`` when it is a number (not a yes/no), else ``UNCHANGED``: a kept value of the wrong kind leaves its
    box as it is."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else UNCHANGED
