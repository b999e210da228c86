"""The Train tab's loop settings kept in the browser: what a reload gives back, and what it leaves as it is."""

import pytest

from red_explorer.app.ui.handlers import train_settings
from red_explorer.app.ui.handlers.navigation import UNCHANGED


def test_the_settings_a_browser_kept_come_back_in_the_tabs_order():
    kept = train_settings.kept(1.0, 3, 4, 7, 1)
    assert kept == {"epochs": 1.0, "max_steps": 3, "batch_size": 4, "seed": 7, "eval_every": 1}
    assert train_settings.restored(kept) == (1.0, 3, 4, 7, 1)


@pytest.mark.parametrize("stored", [{}, None, "3", [3, 4]])
def test_nothing_kept_leaves_every_setting_as_it_is(stored):
    assert train_settings.restored(stored) == (UNCHANGED,) * 5


def test_a_value_that_is_not_a_number_is_left_as_it_is():
    stored = {"epochs": "1; drop", "max_steps": True, "batch_size": None, "seed": 2, "eval_every": 0}
    assert train_settings.restored(stored) == (UNCHANGED, UNCHANGED, UNCHANGED, 2, 0)
