"""The Train tab's loop settings and Layers box kept in the browser: what a reload gives back, and what it leaves as
it is."""

import pytest

from red_explorer.app.ui import build_demo
from red_explorer.app.ui.handlers import train_settings
from red_explorer.app.ui.handlers.navigation import UNCHANGED


def test_the_settings_a_browser_kept_come_back_in_the_tabs_order():
    kept = train_settings.kept(1.0, 3, 4, 7, 1, "last:2")
    assert kept == {"epochs": 1.0, "max_steps": 3, "batch_size": 4, "seed": 7, "eval_every": 1, "layers": "last:2"}
    assert train_settings.restored(kept) == (1.0, 3, 4, 7, 1, "last:2")


@pytest.mark.parametrize("stored", [{}, None, "3", [3, 4]])
def test_nothing_kept_leaves_every_setting_as_it_is(stored):
    assert train_settings.restored(stored) == (UNCHANGED,) * 6


def test_a_value_of_the_wrong_kind_is_left_as_it_is():
    stored = {"epochs": "1; drop", "max_steps": True, "batch_size": None, "seed": 2, "eval_every": 0, "layers": 3}
    assert train_settings.restored(stored) == (UNCHANGED, UNCHANGED, UNCHANGED, 2, 0, UNCHANGED)
    assert train_settings.restored({"layers": "1," * 200})[-1] is UNCHANGED  # longer than the box would make


def test_the_layers_box_is_kept_and_given_back_with_the_loop_settings():
    demo = build_demo(preload=False)
    (keep,) = [function for function in demo.fns.values() if function.name == "kept"]
    (give_back,) = [function for function in demo.fns.values() if function.name == "restored"]
    names = ["epochs", "max-steps", "batch-size", None, "eval-every", "train-layers"]  # the seed has no elem_id
    assert [block.elem_id for block in keep.inputs] == names
    assert [block.elem_id for block in give_back.outputs] == names
    assert give_back.inputs == keep.outputs  # the one browser state
