"""Explore tab widgets: a run at a strength α beside the base, dose-response, token drift, layers, arithmetic."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.browser_secret import browser_secret
from red_explorer.app.explore_plots import DOSE_HINT, LAYERS_HINT, placeholder_figure
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import explore as handlers
from red_explorer.app.ui.handlers import explore_kept as kept_handlers

PROMPT = "Write one sentence about a small red bird."


def _strength_section(state: gr.State, run: gr.Dropdown, max_length: gr.Slider) -> dict:
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
    shown = {"base_card": base_card, "run_card": run_card, "generated": generated, "dose_plot": dose_plot}
    return {"prompt": prompt, "tokens": tokens, **shown}


def _drift_section(state: gr.State, run: gr.Dropdown, prompt: gr.Textbox, generated: gr.Textbox, tokens) -> dict:
    gr.Markdown(
        "#### Token drift: where the run's next-token predictions leave the base's\n"
        "It reads the prompt and the run's output above (generated first when that box is empty)."
    )
    show = gr.Button("Show token drift", elem_id="explore-drift")
    strip = gr.HTML(elem_id="drift-strip")
    inputs = [state, run, prompt, generated, tokens]
    show.click(ui_event(handlers.drift), inputs, [strip, generated], api_name="explore_drift")
    return {"strip": strip}


def _layers_section(state: gr.State, run: gr.Dropdown, max_length: gr.Slider) -> dict:
    gr.Markdown("#### Which layers matter (RED runs): leave one layer out, or keep only it")
    show = gr.Button("Measure per layer", elem_id="explore-layers")
    plot = gr.Plot(
        placeholder_figure(LAYERS_HINT), show_label=False, label="Layer importance", elem_id="layers-importance-plot"
    )
    show.click(ui_event(handlers.layers), [state, run, max_length], plot, api_name="explore_layers")
    return {"layers_plot": plot}


def _arithmetic_section(state: gr.State, run: gr.Dropdown) -> dict:
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
    weights = {"weight_first": weight_first, "weight_second": weight_second}
    return {"first": first, "second": second, "operation": operation, **weights, "status": status}


KEPT_STORAGE_KEY = "red-explorer-explore"  # where the browser keeps Explore's runs, prompt and arithmetic settings


def kept_state() -> gr.BrowserState:
    """Where the browser keeps Explore's settings; make it outside the tabs (a state in a tab not yet drawn is not
    read from the browser when the page loads)."""
    return gr.BrowserState({}, storage_key=KEPT_STORAGE_KEY, secret=browser_secret())


def build(state: gr.State, max_length: gr.Slider, kept: gr.BrowserState) -> dict:
    with gr.Tab("Explore", id="explore") as tab:
        gr.Markdown("#### Explore a kept run: how strong, where it acts, which layers it needs")
        run = gr.Dropdown([], label="Run (RED, TARE or LoRA)", allow_custom_value=True, elem_id="explore-run-choice")
        parts = {"run": run, **_strength_section(state, run, max_length)}
        parts |= _drift_section(state, run, parts["prompt"], parts["generated"], parts["tokens"])
        parts |= _layers_section(state, run, max_length)
        parts |= _arithmetic_section(state, run)
        opened = gr.State(False)  # whether the page load gave the kept settings back yet (a change before is not kept)
    picked = [parts[name] for name in ("run", "first", "second")]
    tab.select(ui_event(handlers.choices), [state, *picked], picked, queue=False, api_visibility="private")
    settings = [parts[name] for name in kept_handlers.SETTINGS]  # kept in the browser: a reload gives them back
    changes = [component.change for component in settings]
    private = dict(queue=False, show_progress="hidden", api_visibility="private")
    gr.on(changes, ui_event(kept_handlers.kept_explore), [opened, *settings], [kept], **private)
    typed = [component.input for component in settings]  # the user's own, also before the page load gave them back
    gr.on(typed, ui_event(kept_handlers.typed_explore), settings, [kept], **private)
    shown = [parts[name] for name in (*kept_handlers.TEXTS, *kept_handlers.FIGURES)]
    return {"tab": tab, "restored": [*picked, *settings[3:], *shown, opened]}
