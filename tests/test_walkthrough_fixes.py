"""What a walk through the app found: labels that hide a layer choice, a dropped second click, a one-step loss
line drawn as nothing, a LoRA save that asks the hub, a refusal that named the wrong thing."""

import pytest
from test_app_page_state import _events
from tiny_models import tiny_model

from red_explorer.app.exploring import Explorer
from red_explorer.app.plots import loss_figure
from red_explorer.app.ui import build_demo
from red_explorer.core.registry import MethodSpec, apply_method, save_method
from red_explorer.runs.labels import LabelFacts, auto_labels


def test_a_run_on_chosen_layers_says_so_in_its_label_and_the_all_layers_run_does_not():
    chosen, every = MethodSpec("red", layers=[26, 27, 28, 29]), MethodSpec("red")
    assert chosen.label == "RED full (ffn) · layers 26-29" and every.label == "RED full (ffn)"
    assert MethodSpec("tare", layers=[1]).label == "TARE E=4 k=2 (ffn) · layers 1"
    assert auto_labels([LabelFacts.of(chosen, 1e-2, 3), LabelFacts.of(every, 1e-2, 2)]) == [
        "RED full (ffn) · layers 26-29",
        "RED full (ffn)",
    ]


def test_train_and_ablation_buttons_are_greyed_while_their_job_runs_and_given_back_after():
    demo = build_demo(preload=False)
    functions = list(demo.fns.values())

    def after(index: int) -> list[int]:
        return [later for later, function in enumerate(functions) if function.trigger_after == index]

    def outputs(index: int) -> list[str]:
        return [output.elem_id for output in functions[index].outputs]

    for button, job in (("train-button", "train"), ("ablation-button", "ablate")):
        assert _events(demo, button, "click")[0] == [button]  # the click greys the button, and only that
        greyed = next(
            index
            for index, function in enumerate(functions)
            if function.name == "<lambda>" and outputs(index) == [button] and function.trigger_after is None
        )
        (started,) = [index for index in after(greyed) if functions[index].api_name == job]  # then the job, in
        assert [button] in [outputs(index) for index in after(started)]  # the same chain; then it is given back


def test_every_demo_button_is_greyed_while_a_demo_runs_and_given_back_after_it_ends_or_fails():
    demo = build_demo(preload=False)
    functions = list(demo.fns.values())
    buttons = [
        block.elem_id for block in demo.blocks.values() if str(getattr(block, "elem_id", "")).startswith("demo-")
    ]
    buttons = [name for name in buttons if _events(demo, name, "click")]  # the demo buttons, not their panels
    assert len(buttons) == 3
    for button in buttons:
        greyed = next(
            index for index, function in enumerate(functions) if (_block(demo, button), "click") in function.targets
        )
        assert [output.elem_id for output in functions[greyed].outputs] == buttons
        assert [update["interactive"] for update in functions[greyed].fn()] == [False] * 3  # texts kept: an input
        (job,) = [index for index, function in enumerate(functions) if function.trigger_after == greyed]
        assert functions[job].name == "run_demo"
        ended = [function for function in functions if function.trigger_after == job]
        assert sorted((function.trigger_only_on_success, function.trigger_only_on_failure) for function in ended) == [
            (False, False),  # .then: after it finished or was stopped
            (False, True),  # .failure: the page runs only these after an error
        ]
        for function in ended:
            assert [output.elem_id for output in function.outputs] == buttons
            assert [update["interactive"] for update in function.fn()] == [True] * 3


def test_delete_run_asks_first_and_only_the_confirmation_deletes():
    demo = build_demo(preload=False)
    assert _events(demo, "run-delete", "click") == [
        [],
        ["run-delete-confirm", "run-delete-sure"],
    ]  # a check, a question
    sure = _events(demo, "run-delete-sure", "click")
    assert ["runs-overview", "export-run"] in sure and ["run-delete-confirm"] in sure  # deleted, the question gone
    (deleting,) = [function for function in demo.fns.values() if function.api_name == "delete_run"]
    assert [block.elem_id for block in deleting.inputs][1:] == ["export-run"]  # scripted clients: the label only
    assert ["run-delete-confirm"] in _events(demo, "export-run", "change")  # another run picked: asked again


def _block(demo, elem_id: str) -> int:
    return next(block._id for block in demo.blocks.values() if getattr(block, "elem_id", None) == elem_id)


def test_a_single_logged_step_is_drawn_as_a_point():
    figure = loss_figure({"RED full (ffn)": ([1.25], [])})
    assert figure.data[0].mode == "markers" and list(figure.data[0].y) == [1.25]
    assert loss_figure({"RED full (ffn)": ([1.25, 1.0], [])}).data[0].mode == "lines"


def test_saving_a_lora_run_never_asks_the_hub(tmp_path, monkeypatch):
    from peft.utils import save_and_load

    def no_hub(*args, **kwargs):
        raise AssertionError("the hub was asked for the base model's config")

    monkeypatch.setattr(save_and_load, "check_file_exists_on_hf_hub", no_hub)
    spec = MethodSpec("lora")
    model = apply_method(tiny_model("llama"), spec, "causal-lm")
    save_method(model, spec, tmp_path / "run", base_model="HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


def test_a_refusal_for_the_wrong_kind_of_run_names_the_methods_as_people_write_them():
    class OneRun:
        def run(self, label):
            return type("Run", (), {"spec": MethodSpec("lora")})()

    with pytest.raises(ValueError, match=r"^LoRA r=8 is a LoRA run; this works on RED runs only: pick one$"):
        Explorer(OneRun())._run("LoRA r=8", ("red",))


def test_a_request_arriving_after_its_tab_closed_opens_no_new_session():
    from red_explorer.app.ui.session import Session, open_sessions

    before = open_sessions()
    left, idle = Session(), Session()
    left.workbench, idle.workbench  # noqa: B018 (made on first use)
    assert open_sessions() == before + 2
    left.close()  # the tab left
    idle.free()  # an API client idle for an hour: it may come back
    with pytest.raises(ValueError, match="this page was closed"):
        left.workbench  # noqa: B018
    assert idle.workbench.owner and open_sessions() == before + 1
    idle.close()
