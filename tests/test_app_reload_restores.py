"""What a reload (a new session of the same owner) shows again: the runs' timings, Compare's and Explore's last
results, without training or generating anything."""

import stat

import gradio as gr
import pandas as pd
import pytest
from app_helpers import TRAIN

from red_explorer.app import last_shown
from red_explorer.app.exploring import Explorer
from red_explorer.app.last_shown import SHOWN_FILE, keep_shown, recall_shown
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.ui import build_demo
from red_explorer.app.ui.handlers import compare, compare_kept, data, explore, explore_kept, model, train
from red_explorer.app.ui.handlers.common import ROW_COLOURS
from red_explorer.app.ui.handlers.navigation import UNCHANGED
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only contend


def _page(owner: str = "") -> tuple[Session, str]:
    """A page of the browser whose owner key is ``owner`` (a new one when empty)."""
    page = Session(Workbench(ModelRegistry()))
    return page, page.adopt_owner(owner)


@pytest.fixture(scope="module")
def trained(files):
    """An owner with a RED run trained through the Train tab, and that page closed: (owner key, run label)."""
    first, owner = _page()
    model.load_model(first, str(files[0]), "causal-lm", "auto", "auto")
    data.load_data(first, str(files[1]), None, 0.1, 0, 64)
    list(train.train(first, ["RED"], "full", ["ffn"], **TRAIN))
    [label] = first.workbench.run_labels()
    first.close()
    return owner, label


def test_a_reload_shows_the_set_up_and_step_time_of_earlier_runs(trained):
    owner, label = trained
    page, _ = _page(owner)
    model.restore_last(page)
    record = page.workbench.run(label).record  # read again from the run store
    assert record.setup_seconds > 0 and record.seconds_per_step > 0
    _, table = train.show(page, [label])
    row = table.iloc[0]
    assert pd.notna(row["set-up (s)"]) and pd.notna(row["s/step"])
    assert (row["set-up (s)"], row["s/step"]) == (round(record.setup_seconds, 1), round(record.seconds_per_step, 2))
    page.close()


def _no_generation(*args, **kwargs):
    raise AssertionError("a page load generated")


def test_a_reload_gives_compare_its_settings_and_last_generations_back_without_generating(trained, monkeypatch):
    owner, label = trained
    first, _ = _page(owner)
    model.restore_last(first)
    shown, cards, table = compare.compare(first, "red cat", None, [label], 16, False, 0.7, 1.1, 0)
    settings = compare_kept.kept_compare(True, "red cat", [label], 16, False, 0.7, 1.1, 0)  # what the browser keeps
    assert compare_kept.kept_compare(False, "", [], 48, False, 0.7, 1.1, 0) is UNCHANGED  # the page is opening
    first.close()

    page, _ = _page(owner)
    model.restore_last(page)
    monkeypatch.setattr(Workbench, "compare", _no_generation)
    prompt, runs, *decoding, shown_again, cards_again, table_again, opened = compare_kept.restore_compare(
        page, settings
    )
    assert prompt == "red cat" and runs.value == [label] and label in runs.choices
    assert decoding == [16, False, 0.7, 1.1, 0]
    assert (shown_again, cards_again) == (shown, cards) and cards.count("gen-card") == 2
    pd.testing.assert_frame_equal(table_again, table, check_dtype=False)
    assert table_again.attrs[ROW_COLOURS] == table.attrs[ROW_COLOURS] and opened is True
    page.close()


def test_a_new_browser_or_a_kept_value_of_the_wrong_kind_leaves_compare_as_it_is(files):
    page, _ = _page()
    model.load_model(page, str(files[0]), "causal-lm", "auto", "auto")
    assert compare_kept.restore_compare(page, None) == (*(UNCHANGED,) * 10, True)
    wrong = {"prompt": 3, "runs": ["not a run"], "max_new_tokens": "16", "do_sample": 1, "temperature": True}
    assert compare_kept.restore_compare(page, wrong) == (*(UNCHANGED,) * 10, True)
    page.close()


def _chain_after(demo: gr.Blocks, name: str):
    """The one function named ``name`` and the function it runs after."""
    (function,) = [function for function in demo.fns.values() if function.name == name]
    return function, demo.fns[function.trigger_after]


def test_the_page_load_gives_back_what_the_browser_keeps_of_compare_after_the_owners_runs_are_listed():
    demo = build_demo(preload=False)
    (keep,) = [function for function in demo.fns.values() if function.name == "kept_compare"]
    give_back, before = _chain_after(demo, "restore_compare")
    assert give_back.outputs[:7] == keep.inputs[1:] and give_back.inputs[1] is keep.outputs[0]
    assert give_back.outputs[-1] is keep.inputs[0]  # a change is kept once the page load gave the settings back
    assert [block.elem_id for block in keep.inputs[1:4]] == ["compare-prompt", "compare-runs", "max-new-tokens"]
    assert [block.elem_id for block in give_back.outputs[7:-1]] == [
        "compare-prompt-shown",
        "compare-cards",
        "compare-table",
    ]
    assert before.name == "restored" and _chain_after(demo, "listed_runs")[1].name == "restored_length"
    assert isinstance(keep.outputs[0], gr.BrowserState) and not _in_a_tab(keep.outputs[0])


def _in_a_tab(block) -> bool:
    """Whether ``block`` sits in a tab (a browser state there is not read from the browser as the page loads)."""
    while block is not None:
        if isinstance(block, gr.Tab):
            return True
        block = block.parent
    return False


def test_a_reload_gives_explore_its_settings_and_last_results_back_without_computing(trained, monkeypatch):
    owner, label = trained
    first, _ = _page(owner)
    model.restore_last(first)
    base_card, run_card, text = explore.generate(first, label, 2.0, "red cat", 8)
    strip, _ = explore.drift(first, label, "red cat", text, 8)
    dose, layers = explore.dose(first, label, 64), explore.layers(first, label, 64)
    settings = explore_kept.kept_explore(True, label, label, None, "red cat", 8, "negate", 0.5, 2.0)  # the browser's
    assert explore_kept.kept_explore(False, label, label, None, "", 8, "mix", 1, 1) is UNCHANGED  # page opening
    first.close()

    page, _ = _page(owner)
    model.restore_last(page)
    for name in ("generate_at", "drift", "dose_response", "layers"):
        monkeypatch.setattr(Explorer, name, _no_generation)
    restored = explore_kept.restore_explore(page, settings)
    picked, values, (*texts, status), figures = restored[:3], restored[3:8], restored[8:13], restored[13:15]
    assert [choice.value for choice in picked[:2]] == [label, label] and label in picked[0].choices
    assert values == ("red cat", 8, "negate", 0.5, 2.0)
    assert texts == [base_card, run_card, text, strip] and "α = 2" in run_card and status is UNCHANGED
    assert [figure.to_dict() for figure in figures] == [dose.to_dict(), layers.to_dict()] and restored[15] is True
    page.close()


def test_a_new_browser_or_a_kept_value_of_the_wrong_kind_leaves_explores_boxes_as_they_are(trained):
    owner, label = trained
    page, _ = _page(owner)
    model.restore_last(page)
    wrong = {"run": 3, "first": "a deleted run", "prompt": ["x"], "tokens": "8", "operation": "divide"}
    for kept in (None, wrong):  # the runs are left for the tab to choose as it opens (its latest run)
        restored = explore_kept.restore_explore(page, kept)
        assert restored[:8] == (UNCHANGED,) * 8 and restored[-1] is True
    page.close()


def test_the_page_load_gives_back_what_the_browser_keeps_of_explore_after_compare():
    demo = build_demo(preload=False)
    (keep,) = [function for function in demo.fns.values() if function.name == "kept_explore"]
    give_back, before = _chain_after(demo, "restore_explore")
    assert before.name == "restore_compare" and give_back.inputs[1] is keep.outputs[0]
    assert give_back.outputs[:8] == keep.inputs[1:] and give_back.outputs[-1] is keep.inputs[0]
    names = ["explore-base", "explore-run", None, "drift-strip", None, "dose-plot", "layers-importance-plot"]
    assert [block.elem_id for block in give_back.outputs[8:-1]] == names
    assert [block.elem_id for block in keep.inputs[1:2] + keep.inputs[4:5]] == ["explore-run-choice", "explore-prompt"]
    assert isinstance(keep.outputs[0], gr.BrowserState) and not _in_a_tab(keep.outputs[0])


def test_what_a_tab_showed_is_kept_owner_only_merged_by_name_and_not_past_its_size(tmp_path, monkeypatch):
    owner = "0" * 32
    keep_shown(tmp_path, owner, "explore", {"strip": "<b>a</b>", "generated": "a"})
    keep_shown(tmp_path, owner, "explore", {"generated": "b"})  # a later result replaces only what it shows
    assert recall_shown(tmp_path, owner, "explore") == {"strip": "<b>a</b>", "generated": "b"}
    path = tmp_path / owner / SHOWN_FILE.format(tab="explore")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and recall_shown(tmp_path, owner, "compare") == {}
    monkeypatch.setattr(last_shown, "MAX_SHOWN_BYTES", 100)
    keep_shown(tmp_path, owner, "explore", {"generated": "x" * 200})  # too large: the last one kept stays
    assert recall_shown(tmp_path, owner, "explore")["generated"] == "b"
    with pytest.raises(ValueError, match="lower-case letters"):
        keep_shown(tmp_path, owner, "../runs", {})
    path.write_text("[1, 2")  # unreadable: nothing is restored
    assert recall_shown(tmp_path, owner, "explore") == {}


@pytest.mark.parametrize(("typed", "gated"), [("typed_compare", "kept_compare"), ("typed_explore", "kept_explore")])
def test_what_the_user_types_is_kept_even_before_the_page_load_gave_the_settings_back(typed, gated):
    """The user's own changes (input events) are kept ungated; the app's changes (change events) wait for the load."""
    demo = build_demo(preload=False)
    (own,) = [function for function in demo.fns.values() if function.name == typed]
    (any_change,) = [function for function in demo.fns.values() if function.name == gated]
    assert own.inputs == any_change.inputs[1:] and own.outputs == any_change.outputs
    assert {event for _, event in own.targets} == {"input"}
    assert {event for _, event in any_change.targets} == {"change"}
    values = [f"value {index}" for index in range(len(own.inputs))]
    handler = compare_kept.typed_compare if typed == "typed_compare" else explore_kept.typed_explore
    names = compare_kept.SETTINGS if typed == "typed_compare" else explore_kept.SETTINGS
    assert handler(*values) == dict(zip(names, values, strict=True))
