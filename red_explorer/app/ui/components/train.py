"""Train tab widgets: every registered method and its settings, shared training settings, Train/Stop, live curves,
the runs shown and the summary."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.browser_secret import browser_secret
from red_explorer.app.ui.events import busy_click, ui_event
from red_explorer.app.ui.handlers import common, train_methods
from red_explorer.app.ui.handlers import data as data_handlers
from red_explorer.app.ui.handlers import train as handlers
from red_explorer.app.ui.handlers import train_settings as settings
from red_explorer.app.ui.texts import EPOCHS_LABEL, FULL_SENTENCE, MAX_STEPS_LABEL, TARE_SENTENCE, TIMING_NOTE
from red_explorer.choice.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_STEPS
from red_explorer.core.registry import DEFAULT_LEARNING_RATES

VARIANTS = [("scale + bias (RED)", "full"), ("scale only", "scale"), ("bias only", "bias")]
SITES = [("FFN output (paper default)", "ffn"), ("attention output", "attn")]
SITES_HELP = (  # README, "When to choose RED", says the same
    "Ticking both: about as good as tuned LoRA r=8 on the two generation samples we measured, but it forgets more "
    "general text than FFN only (README: When to choose RED)"
)


def _method_settings() -> list:
    with gr.Accordion("RED / TARE settings", open=True):
        variant = gr.Radio(VARIANTS, value="full", label="RED vectors")
        sites = gr.CheckboxGroup(
            SITES,
            value=["ffn"],
            label="Edit sites",
            info=SITES_HELP,
        )
        layers = gr.Textbox(
            "",
            label="Layers (RED and TARE; empty = all)",
            placeholder="e.g. 1-29, last:8 or 0,2,5-9 (a control vector needs layers 1 and up)",
            elem_id="train-layers",
        )
        red_lr = gr.Number(DEFAULT_LEARNING_RATES["red"], label="RED learning rate")
    with gr.Accordion("LoRA settings", open=False):
        lora_rank = gr.Number(8, precision=0, minimum=1, label="LoRA rank r (α = 2r, attention q/v)")
        lora_lr = gr.Number(DEFAULT_LEARNING_RATES["lora"], label="LoRA learning rate")
    with gr.Accordion("TARE settings", open=False):
        gr.Markdown(TARE_SENTENCE)
        with gr.Row():
            editors = gr.Number(4, precision=0, minimum=1, label="Editors per site (E)")
            top_k = gr.Number(2, precision=0, minimum=1, label="Active per token (k)")
        tare_lr = gr.Number(DEFAULT_LEARNING_RATES["tare"], label="TARE learning rate")
    return [variant, sites, lora_rank, editors, top_k, red_lr, lora_lr, tare_lr, layers]


def _other_rates() -> gr.Dataframe:
    """One table of learning rates, a row per method without settings of its own (registry defaults)."""
    with gr.Accordion("Learning rates of the other methods", open=False):
        rates = gr.Dataframe(
            train_methods.default_rate_table(),
            headers=train_methods.RATE_COLUMNS,
            datatype=["str", "number"],
            static_columns=[0],
            row_count=len(train_methods.OTHER_METHODS),
            show_label=False,
            label="Learning rates",
            elem_id="train-other-rates",
        )
        gr.Markdown(FULL_SENTENCE, elem_classes=["red-note"])
    return rates


def _loop_settings(max_length: gr.Slider) -> tuple[list, gr.Markdown]:
    with gr.Group():
        with gr.Row():
            max_steps = gr.Number(DEFAULT_MAX_STEPS, precision=0, minimum=0, label=MAX_STEPS_LABEL, elem_id="max-steps")
            epochs = gr.Number(1, minimum=0.1, label=EPOCHS_LABEL, elem_id="epochs")
        with gr.Row():
            batch_size = gr.Number(DEFAULT_BATCH_SIZE, precision=0, minimum=1, label="Batch size", elem_id="batch-size")
            seed = gr.Number(0, precision=0, label="Seed")
        eval_every = gr.Number(
            10, precision=0, minimum=0, label="Validation loss every N steps (0 = off)", elem_id="eval-every"
        )
    note = gr.Markdown(data_handlers.length_line(None, 128), elem_id="train-length-note")
    return [epochs, max_steps, batch_size, max_length, seed, eval_every], note


LOOP_STORAGE_KEY = "red-explorer-train-loop"  # where the browser keeps the Train tab's loop settings
SUMMARY_WIDTHS = ["16%"] + ["10.5%"] * (len(handlers.SUMMARY_COLUMNS) - 1)  # "trainable" fits at 700 px


def build(state: gr.State, max_length: gr.Slider, concurrency_limit: int, kept_loop: gr.BrowserState) -> dict:
    with gr.Tab("Train", id="train") as tab:
        gr.Markdown("#### Train RED or any other method on your data (each run keeps only what it trained)")
        with gr.Row():
            with gr.Column():
                methods = gr.CheckboxGroup(
                    train_methods.method_choices(), value=["RED"], label="Methods", elem_id="train-methods"
                )
                method_inputs = [*_method_settings(), _other_rates()]
            with gr.Column():
                loop_inputs, note = _loop_settings(max_length)
        with gr.Row():
            start = gr.Button("Train", variant="primary", elem_id="train-button", scale=3)
            stop = gr.Button("Stop", variant="stop", elem_id="stop-button", scale=1)
        status = gr.HTML(handlers.IDLE, label="Training status", elem_id="train-status")
        shown = gr.Dropdown([], value=[], multiselect=True, label="Runs shown", elem_id="train-runs-shown")
        listed = gr.State(None)  # the runs the picker listed last: a run not among them is new, and joins the pick
        loss = gr.Plot(show_label=False, label="Loss", elem_id="loss-plot")
        summary = gr.Dataframe(
            headers=handlers.SUMMARY_COLUMNS,
            label="Summary",
            elem_id="train-summary",
            wrap=True,
            column_widths=SUMMARY_WIDTHS,  # shares of the width: the table fits a narrow page instead of scrolling
        )
        gr.Markdown(TIMING_NOTE, elem_classes=["red-note"])
    # the rates table, the pick and the layers go last: the API's earlier positional arguments of /train stay
    *red_tare, layers, rates = method_inputs
    inputs = [state, methods, *red_tare, *loop_inputs, rates, shown, layers]
    job = busy_click(
        start,
        "Training… (Stop ends it)",
        ui_event(handlers.train),
        inputs,
        [status, loss, summary],
        api_name="train",
        show_progress_on=[status],
        concurrency_id="training",
        concurrency_limit=concurrency_limit,
    )
    job.failure(
        ui_event(handlers.restore_after_failure),
        [state, shown],
        [status, loss, summary],
        api_visibility="private",
        show_progress="hidden",
    )
    stop.click(ui_event(common.stop), [state], [status], api_name="stop", queue=False)
    wire_runs_shown(tab, job, state, shown, listed, loss, summary)
    wire_length_note(tab, state, max_length, note)
    loop = [component for component in loop_inputs if component is not max_length]  # the Data tab keeps that one
    kept = [*loop, layers]  # kept in the browser (settings.KEPT_KEYS): a reload gives them back
    changes = [component.change for component in kept]
    gr.on(changes, settings.kept, kept, [kept_loop], queue=False, show_progress="hidden", api_visibility="private")
    return {"tab": tab, "kept": kept}


def kept_loop_state() -> gr.BrowserState:
    """Where the browser keeps the loop settings and the layers; make it outside the tabs (a state in a tab not yet
    drawn is not read from the browser when the page loads)."""
    return gr.BrowserState({}, storage_key=LOOP_STORAGE_KEY, secret=browser_secret())


def wire_runs_shown(tab: gr.Tab, job, state: gr.State, shown: gr.Dropdown, listed: gr.State, loss, summary) -> None:
    """List the runs when the tab opens and after a job (new runs join the pick); a new pick redraws."""
    private = dict(api_visibility="private", show_progress="hidden")
    refresh = ui_event(handlers.shown_choices)
    tab.select(refresh, [state, shown, listed], [shown, listed], **private)
    job.then(refresh, [state, shown, listed], [shown, listed], **private)
    shown.change(ui_event(handlers.show), [state, shown], [loss, summary], **private)


def wire_length_note(tab: gr.Tab, state: gr.State, max_length: gr.Slider, note: gr.Markdown) -> None:
    """Keep a tab's max-length line current: when the slider moves and when the tab opens."""
    refresh = ui_event(data_handlers.length_note)
    max_length.change(refresh, [state, max_length], [note], api_visibility="private", show_progress="hidden")
    tab.select(refresh, [state, max_length], [note], api_visibility="private", show_progress="hidden")
