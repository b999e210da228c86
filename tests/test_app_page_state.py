"""What a page shows after a reload and across tabs: the owner's last model and data, the latest runs, wiring."""

import shutil
import stat

import gradio as gr
import pytest
from app_helpers import new_session

from red_explorer.app.last_choice import CHOICE_FILE, recall
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.options import TrainOptions
from red_explorer.app.ui import build_demo
from red_explorer.app.ui.handlers import compare, data, model, train
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.interface import launch_options
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.core.registry import MethodSpec

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only contend


def test_a_reload_restores_the_owners_model_and_uploaded_data(files, tmp_path):
    upload = tmp_path / "gradio-temp" / "my rows.csv"  # an upload lives in a temporary folder
    upload.parent.mkdir()
    shutil.copyfile(files[1], upload)
    first = Session(Workbench(ModelRegistry()))
    owner = first.adopt_owner("")
    model.load_model(first, str(files[0]), "causal-lm", "auto", "auto")
    data.load_data(first, str(upload), None, 0.2, 30, 64)
    choice_file = first.workbench.store.root / owner / CHOICE_FILE
    first.close()
    shutil.rmtree(upload.parent)  # the temporary upload is gone after the reload
    assert stat.S_IMODE(choice_file.stat().st_mode) == 0o600  # the owner's choice is private to the app's user

    page = Session(Workbench(ModelRegistry()))  # the reloaded page: a new session, the same owner key
    page.adopt_owner(owner)
    summary, diagram, figure, status, spec, task, device, dtype, quantize = model.restore_last(page)
    assert (spec, task, device, dtype, quantize) == (str(files[0]), "causal-lm", "cpu", "float32", "none")
    assert summary.startswith("> Restored your last model and data (my rows.csv).") and "| layers | 2 |" in summary
    assert "<svg" in diagram and "ready" in status
    assert model.show_model(page)[0] == summary  # the tab opened later: the same model, still saying it was restored
    restored = page.workbench.data
    assert (restored.name, restored.validation_fraction, restored.max_rows) == ("my rows.csv", 0.2, 30)
    assert data.show_data(page, 64)[0].startswith("### my rows.csv")  # the Data tab shows it on select

    stranger = Session(Workbench(ModelRegistry()))  # another owner restores nothing of it
    stranger.adopt_owner("")
    assert recall(stranger.workbench.store, stranger.workbench.owner) is None
    summary, *_, spec, _, _, _, _ = model.restore_last(stranger)
    assert spec == "default" and stranger.workbench.data is None and "Restored" not in summary


def test_a_reload_restores_the_max_length_last_set(files):
    first = Session(Workbench(ModelRegistry()))
    owner = first.adopt_owner("")
    model.load_model(first, str(files[0]), "causal-lm", "auto", "auto")
    data.load_data(first, str(files[1]), None, 0.1, 0, 64)  # loaded with the slider at 64
    assert recall(first.workbench.store, owner).max_length == 64
    summary = data.length_set(first, 96)[0]  # then the slider moved
    assert "(> 96)" in summary and recall(first.workbench.store, owner).max_length == 96
    first.close()

    page = Session(Workbench(ModelRegistry()))
    page.adopt_owner(owner)
    model.restore_last(page)
    assert data.restored_length(page) == 96
    demo = build_demo(preload=False)  # the page load sets the slider after restoring the model and data
    restored = [function for function in demo.fns.values() if function.name == "restored_length"]
    assert [[output.elem_id for output in function.outputs] for function in restored] == [["max-length"]]
    assert restored[0].trigger_after == next(
        index for index, function in demo.fns.items() if function.name == "restore_last"
    )
    page.close()


def test_a_max_length_set_while_a_file_loads_is_the_one_shown_after_it(files):
    session = new_session(files)
    assert "(> 64)" in data.load_data(session, str(files[1]), None, 0.1, 0, 64)[0]  # the slider as the load began
    assert "(> 32)" in data.length_set(session, 32)[0]  # the slider as it is when the load ends
    demo = build_demo(preload=False)
    for trigger, event in (("data-upload", "upload"), ("load-sample", "click")):
        after = _chained(demo, trigger, event)
        assert after[0].name == "length_set" and after[0].trigger_only_on_success
        assert [block.elem_id for block in after[0].inputs][1:] == ["max-length"]
        assert [block.elem_id for block in after[0].outputs] == ["data-summary", "data-preview", "length-plot"]
    session.close()


def _chained(demo: gr.Blocks, elem_id: str, event: str) -> list:
    """The functions chained after the one that ``event`` of the component ``elem_id`` runs."""
    block = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == elem_id)
    first = next(index for index, function in demo.fns.items() if (block._id, event) in function.targets)
    return [function for function in demo.fns.values() if function.trigger_after == first]


def test_compare_offers_a_prompt_of_the_data_loaded_and_spins_over_the_generations_only(files):
    session = new_session(files)  # words.csv loaded, not the restaurants sample the default prompt is from
    first = session.workbench.data.probe.raw["validation"][0]["prompt"]
    assert first.count(" ") == 2 and compare.prompt_for_data(session, compare.DEFAULT_PROMPT) == first
    assert compare.prompt_for_data(session, "my own words") == "my own words"  # a typed prompt stays
    data.load_data(session, None, "restaurants_e2e.csv", 0.1, 0, 64)
    assert compare.prompt_for_data(session, compare.DEFAULT_PROMPT) == compare.DEFAULT_PROMPT
    demo = build_demo(preload=False)
    (generate,) = [function for function in demo.fns.values() if function.name == "compare"]
    assert [block.elem_id for block in generate.show_progress_on] == ["compare-cards"]
    tab = next(block for block in demo.blocks.values() if isinstance(block, gr.Tab) and block.id == "compare")
    setters = [function for function in demo.fns.values() if (tab._id, "select") in function.targets]
    assert "prompt_for_data" in [function.name for function in setters]  # the prompt is offered as the tab opens
    session.close()


def test_a_page_ticks_the_latest_three_runs_not_all(files):
    session = new_session(files)
    for variant in ("full", "scale", "bias", "full", "scale"):
        session.workbench.train(MethodSpec("red", variant=variant), TrainOptions(max_steps=1, max_length=32))
    labels = session.workbench.run_labels()
    _, runs, _ = compare.choices(session)
    assert runs.choices == labels and runs.value == labels[-3:]
    picker, listed = train.shown_choices(session, [], None)  # the page's first listing
    assert picker.value == labels[-3:] and listed == labels
    session.workbench.train(MethodSpec("lora"), TrainOptions(max_steps=1, max_length=32))
    picker, _ = train.shown_choices(session, picker.value, listed)  # a new run joins what is shown
    assert picker.value == [*labels[-3:], session.workbench.run_labels()[-1]]
    session.close()


def test_compare_ticks_the_runs_trained_since_it_last_listed_and_keeps_a_pick_otherwise(files):
    """A demo ticks its runs in Compare; runs trained after it (Train, an ablation) are ticked when Compare opens."""
    session = new_session(files)
    workbench, options = session.workbench, TrainOptions(max_steps=1, max_length=32)
    listed = compare.listed_runs(session)  # as the page opens
    demo = [workbench.train(MethodSpec(method), options).label for method in ("red", "lora")]  # ticked by the demo
    trained = [workbench.train(MethodSpec("red", variant=v), options).label for v in ("full", "scale", "bias")]
    trained.append(workbench.train(MethodSpec("lora"), options, group="ablation A").label)
    _, runs, listed = compare.choices(session, demo, listed)
    assert runs.value == trained[-3:] and listed == workbench.run_labels()  # the newest three: the cap stays
    _, runs, listed = compare.choices(session, [demo[0], trained[0]], listed)  # nothing new: the user's pick stays
    assert runs.value == [demo[0], trained[0]]
    newest = workbench.train(MethodSpec("red", variant="scale"), options).label
    _, runs, _ = compare.choices(session, [demo[0], trained[0]], listed)  # one new run joins the pick
    assert runs.value == [demo[0], trained[0], newest]
    _, runs, _ = compare.choices(session, [], listed)  # none ticked: the latest three
    assert runs.value == workbench.run_labels()[-3:]
    session.close()


def test_compare_learns_what_was_listed_as_the_page_opens():
    """The page load lists the runs into the state Compare's tab select reads: runs trained later are new."""
    demo = build_demo(preload=False)
    (listing,) = [function for function in demo.fns.values() if function.name == "listed_runs"]
    tab = next(block for block in demo.blocks.values() if isinstance(block, gr.Tab) and block.id == "compare")
    (choices,) = [
        function
        for function in demo.fns.values()
        if (tab._id, "select") in function.targets and function.name == "choices"
    ]
    assert listing.outputs[0] is choices.inputs[2] and choices.outputs[2] is choices.inputs[2]
    assert [block.elem_id for block in choices.outputs[:2]] == ["compare-example", "compare-runs"]
    (tabs,) = [block for block in demo.blocks.values() if isinstance(block, gr.Tabs)]
    assert all(isinstance(child, gr.Tab) for child in tabs.children)  # a state there is drawn as a tab button


def _outputs(demo: gr.Blocks, tab_id: str) -> list[str]:
    """The elem_ids that selecting tab ``tab_id`` updates."""
    tab = next(block for block in demo.blocks.values() if isinstance(block, gr.Tab) and block.id == tab_id)
    return [
        output.elem_id
        for function in demo.fns.values()
        if (tab._id, "select") in function.targets
        for output in function.outputs
    ]


def test_the_data_tab_shows_what_is_loaded_when_opened_and_the_footer_stays_in_the_app():
    demo = build_demo(preload=False)
    assert {"data-summary", "data-preview", "length-plot"} <= set(_outputs(demo, "data"))
    assert {"model-info", "model-diagram", "param-plot"} <= set(_outputs(demo, "model"))  # as the header says
    options = launch_options()
    assert options["run_history"] is False and "runs" not in options["footer_links"]


def _events(demo: gr.Blocks, elem_id: str, event: str) -> list[list[str]]:
    """For each function that ``event`` of the component ``elem_id`` runs (and what runs after it): its outputs."""
    block = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == elem_id)
    functions = list(demo.fns.values())
    first = [index for index, function in enumerate(functions) if (block._id, event) in function.targets]
    chained = [index for index, function in enumerate(functions) if function.trigger_after in first]
    return [[output.elem_id for output in functions[index].outputs] for index in first + chained]


def test_export_clears_the_downloads_of_the_run_chosen_before_and_an_import_joins_your_runs():
    demo = build_demo(preload=False)
    chosen = ["snippet", "edits-file", "merged-file", "control-vector-file", "export-status"]
    assert chosen in _events(demo, "export-run", "change")
    assert ["runs-overview"] in _events(demo, "import-file", "upload")
    assert ["inspect-summary"] == _events(demo, "inspect-button", "click")[-1][:1]  # a refusal clears the panels
    demos = [function for function in demo.fns.values() if function.name == "run_demo"]
    assert len(demos) == 3 and {function.show_progress for function in demos} == {"hidden"}  # its own bar only
    assert [output.elem_id for output in demos[0].outputs][:2] == ["demo-result", "demo-loss"]  # live curves


def test_inspect_shows_a_run_of_another_base_and_a_refusal_leaves_nothing_of_the_run_before(files, tmp_path):
    from app_helpers import save_tiny_llama

    from red_explorer.app.ui.events import ui_event
    from red_explorer.app.ui.handlers import export, inspect

    session = new_session(files)
    other_model = str(save_tiny_llama(tmp_path / "other", seed=1))
    session.workbench.load_model(other_model)
    elsewhere = session.workbench.train(MethodSpec("red"), TrainOptions(max_steps=1, max_length=32)).label
    session.workbench.load_model(str(files[0]))
    summary, *panels, top = inspect.inspect(session, elsewhere)
    assert summary.startswith(f"**{elsewhere}** (trained on another base model: {plain(other_model)}): 2 edited sites")
    assert len(top) == 12 and len(panels[0].data[0].y) == 2  # one bar per layer
    with pytest.raises(gr.Error, match="no run called .*gone"):
        ui_event(inspect.inspect)(session, "gone")
    summary, *figures, top = inspect.restore_after_failure(session)
    assert summary.startswith("✕ **no run called &#x27;gone&#x27;") and top.empty
    assert all(figure.layout.annotations[0].text.startswith("Nothing shown") for figure in figures)
    assert export.chosen(session, None)[1:] == (None, None, None, "")
    session.close()


def test_the_tour_names_the_demos_and_explore_and_a_refused_zip_lists_few_runs(monkeypatch):
    from red_explorer.app.ui.components import about
    from red_explorer.app.ui.handlers import export

    assert "one-minute demo" in about.WHY and "**Explore** a run at any strength α" in about.WHY
    session = Session(Workbench(ModelRegistry()))
    names = [f"run {index}" for index in range(16)]
    monkeypatch.setattr(session.workbench, "run_labels", lambda methods=None: names)
    assert export._runs_now(session) == (
        "Your runs on this model: run 11, run 12, run 13, run 14, run 15 and 11 more (see Your runs below)."
    )


def test_the_sample_list_shows_the_bundled_sample_that_is_loaded(files, tmp_path):
    from red_explorer.app.ui.handlers.navigation import UNCHANGED

    session = new_session(files)  # a CSV of its own: the list stays as the user left it
    assert data.loaded_sample(session) is UNCHANGED
    lookalike = tmp_path / "pirate_style.jsonl"  # an upload that only shares a sample's name
    lookalike.write_text('{"prompt": "a b", "response": "c d"}\n' * 12)
    data.load_data(session, str(lookalike), None, 0.2, 0, 64)
    assert data.loaded_sample(session) is UNCHANGED
    data.load_data(session, None, "pirate_style.jsonl", 0.1, 0, 64)  # as a demo or the list loads it
    assert data.loaded_sample(session) == "pirate_style.jsonl"
