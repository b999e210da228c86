"""Explore tab widgets: a run at a strength α beside the base, dose-response, token drift, layers, arithmetic."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.explore_plots import DOSE_HINT, LAYERS_HINT, placeholder_figure
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import explore as handlers

PROMPT = "Write one sentence about a small red bird."


def _strength_section(state: gr.State, run: gr.Dropdown, max_length: gr.Slider) -> tuple[gr.Textbox, ...]:
    gr.Markdown(
        "#### Strength: the edit at α\n"
        "α = 0 is the base model, 1 the trained edit, above 1 extrapolates, below 0 pushes the other way "
        "(RED: scale_α = 1 + α (scale − 1), bias_α = α · bias)."
    )
    with gr.Row(equal_height=True):
        strength = gr.Slider(-1, 3, value=1, step=0.25, label="Strength α", scale=2, elem_id="explore-strength")
        tokens = gr.Slider(8, 128, value=48, step=8, label="New tokens", scale=1)
    prompt = gr.Textbox(PROMPT, label="Prompt", lines=2, elem_id="explore-prompt")
    generate = gr.Button("Generate", variant="primary", elem_id="explore-generate")
    with gr.Row():
        base_card, run_card = gr.HTML(elem_id="explore-base"), gr.HTML(elem_id="explore-run")
    generated = gr.Textbox(label="The run's output (the token drift below reads it)", interactive=True, lines=2)
    dose = gr.Button("Dose-response over α (validation data)", elem_id="explore-dose")
    dose_plot = gr.Plot(placeholder_figure(DOSE_HINT), show_label=False, label="Dose-response", elem_id="dose-plot")
    inputs = [state, run, strength, prompt, tokens]
    generate.click(ui_event(handlers.generate), inputs, [base_card, run_card, generated], api_name="explore_generate")
    # any new α (dragged or typed) regenerates the run's card; while one runs, only the latest α waits
    strength.change(
        ui_event(handlers.regenerate),
        inputs,
        [run_card, generated],
        api_visibility="private",
        trigger_mode="always_last",
    )
    dose.click(ui_event(handlers.dose), [state, run, max_length], dose_plot, api_name="explore_dose")
    return prompt, generated, tokens


def _drift_section(state: gr.State, run: gr.Dropdown, prompt: gr.Textbox, generated: gr.Textbox, tokens) -> None:
    gr.Markdown(
        "#### Token drift: where the run's next-token predictions leave the base's\n"
        "It reads the prompt and the run's output above (generated first when that box is empty)."
    )
    show = gr.Button("Show token drift", elem_id="explore-drift")
    strip = gr.HTML(elem_id="drift-strip")
    inputs = [state, run, prompt, generated, tokens]
    show.click(ui_event(handlers.drift), inputs, [strip, generated], api_name="explore_drift")


def _layers_section(state: gr.State, run: gr.Dropdown, max_length: gr.Slider) -> None:
    gr.Markdown("#### Which layers matter (RED runs): leave one layer out, or keep only it")
    show = gr.Button("Measure per layer", elem_id="explore-layers")
    plot = gr.Plot(
        placeholder_figure(LAYERS_HINT), show_label=False, label="Layer importance", elem_id="layers-importance-plot"
    )
    show.click(ui_event(handlers.layers), [state, run, max_length], plot, api_name="explore_layers")


def _arithmetic_section(state: gr.State, run: gr.Dropdown) -> tuple[gr.Dropdown, gr.Dropdown]:
    with gr.Accordion("Arithmetic on RED runs, and a control-vector download", open=False):
        gr.Markdown(
            "compose: A then B exactly (s = s_B ⊙ s_A, b = s_B ⊙ b_A + b_B) · mix: s = 1 + Σ w_i (s_i − 1), "
            "b = Σ w_i b_i · negate: A at α = −1. The result is kept as a new run."
        )
        with gr.Row(equal_height=True):
            operation = gr.Radio(list(handlers.OPERATIONS), value="mix", label="Operation")
            first = gr.Dropdown([], label="Run A", allow_custom_value=True)
            second = gr.Dropdown([], label="Run B", allow_custom_value=True)
        with gr.Row(equal_height=True):
            weight_first = gr.Number(1.0, label="Weight of A (mix)")
            weight_second = gr.Number(1.0, label="Weight of B (mix)")
            name = gr.Textbox("", label="Name of the new run")
            make = gr.Button("Make the run", variant="primary")
        status = gr.Markdown()
        inputs = [state, operation, first, second, weight_first, weight_second, name]
        make.click(ui_event(handlers.combine), inputs, [status, run, first, second], api_name="explore_combine")
        gr.Markdown("A bias-only RED run on the FFN outputs is a llama.cpp control vector (`--control-vector`).")
        with gr.Row(equal_height=False):  # the button keeps a button's height beside the taller file box
            export = gr.Button("Control vector (GGUF) of run A", elem_id="explore-control-vector")
            download = gr.File(label="Control vector", interactive=False)
        export.click(ui_event(handlers.control_vector), [state, first], download, api_name="explore_control_vector")
    return first, second


def build(state: gr.State, max_length: gr.Slider) -> dict:
    with gr.Tab("Explore", id="explore") as tab:
        gr.Markdown("#### Explore a kept run: how strong, where it acts, which layers it needs")
        run = gr.Dropdown([], label="Run (RED, TARE or LoRA)", allow_custom_value=True, elem_id="explore-run-choice")
        prompt, generated, tokens = _strength_section(state, run, max_length)
        _drift_section(state, run, prompt, generated, tokens)
        _layers_section(state, run, max_length)
        first, second = _arithmetic_section(state, run)
    tab.select(
        ui_event(handlers.choices),
        [state, run, first, second],
        [run, first, second],
        queue=False,
        api_visibility="private",
    )
    return {"tab": tab}
