"""Compare tab widgets: prompt or validation example, runs, decoding settings; generations side by side."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.browser_secret import browser_secret
from red_explorer.app.options import APP_DECODING
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import compare as handlers
from red_explorer.app.ui.handlers import compare_kept, gallery

WIDE = 220


def _decoding() -> list:
    with gr.Accordion("Decoding (the same for every method)", open=False):
        with gr.Row():  # each control at least WIDE px: on a narrow screen they wrap instead of overlapping
            max_new_tokens = gr.Slider(
                8,
                256,
                value=APP_DECODING.max_new_tokens,
                step=8,
                label="Max new tokens",
                elem_id="max-new-tokens",
                min_width=WIDE,
            )
            do_sample = gr.Checkbox(False, label="Sample (off = greedy)", min_width=WIDE)
            temperature = gr.Slider(0.1, 2.0, value=0.7, step=0.1, label="Temperature (sampling)", min_width=WIDE)
            repetition_penalty = gr.Slider(
                1.0,
                2.0,
                value=APP_DECODING.repetition_penalty,
                step=0.05,
                label="Repetition penalty (Explore uses the default)",
                min_width=WIDE,
            )
            no_repeat = gr.Number(0, precision=0, minimum=0, label="No-repeat n-gram (0 = off)", min_width=WIDE)
    return [max_new_tokens, do_sample, temperature, repetition_penalty, no_repeat]


KEPT_STORAGE_KEY = "red-explorer-compare"  # where the browser keeps Compare's prompt, ticked runs and decoding


def kept_state() -> gr.BrowserState:
    """Where the browser keeps Compare's settings; make it outside the tabs (a state in a tab not yet drawn is not
    read from the browser when the page loads)."""
    return gr.BrowserState({}, storage_key=KEPT_STORAGE_KEY, secret=browser_secret())


def build(state: gr.State, kept: gr.BrowserState) -> dict:
    with gr.Tab("Compare", id="compare") as tab:
        gr.Markdown("#### Base model | RED | LoRA on the same prompt, with the same decoding")
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(handlers.DEFAULT_PROMPT, lines=2, label="Prompt", elem_id="compare-prompt")
                example = gr.Dropdown(
                    [],
                    value=None,
                    label="…or a validation example (wins over the prompt; shows the reference)",
                    allow_custom_value=True,
                    elem_id="compare-example",
                )
            runs = gr.Dropdown(
                [],
                multiselect=True,
                allow_custom_value=True,
                label="Runs next to the base model",
                elem_id="compare-runs",
                scale=2,
            )
        with gr.Row(equal_height=False):  # a gallery run's recorded answers, and the button that makes them now
            with gr.Column(scale=5):
                prepared = gr.HTML(elem_id="compare-prepared")
            with gr.Column(scale=1, min_width=160):
                live = gr.Button("Generate live", elem_id="compare-live")
        decoding = _decoding()
        generate = gr.Button("Generate", variant="primary", elem_id="compare-button")
        shown = gr.Markdown(label="Prompt and reference", elem_id="compare-prompt-shown")
        cards = gr.HTML(label="Generations", elem_id="compare-cards")
        table = gr.Dataframe(
            headers=handlers.TABLE_COLUMNS,
            label=handlers.TABLE_TITLE,
            elem_id="compare-table",
            wrap=True,
            column_widths=["16%", "9%", "9%", "9%", "11%", "46%"],  # numbers stay on one line, the text wraps
        )
        listed = gr.State(None)  # the runs the last listing held: a run not among them is new, and gets ticked
        opened = gr.State(False)  # whether the page load gave the kept settings back yet (a change before is not kept)
    generate.click(
        ui_event(handlers.compare),
        [state, prompt, example, runs, *decoding],
        [shown, cards, table],
        api_name="compare",
        concurrency_id="generation",
        concurrency_limit=2,
        show_progress_on=[cards],  # one spinner where the generations appear, not three over the whole result
    )
    tab.select(
        ui_event(handlers.choices),
        [state, runs, listed],
        [example, runs, listed],
        queue=False,
        api_visibility="private",
    ).then(ui_event(gallery.prepared), [state, runs], [prepared], queue=False, api_visibility="private")
    runs.change(ui_event(gallery.prepared), [state, runs], [prepared], queue=False, api_visibility="private")
    filled = [prompt, example, decoding[0], decoding[1], decoding[3], decoding[4]]
    live.click(ui_event(gallery.live_settings), [state, runs], filled, queue=False, api_visibility="private").success(
        ui_event(gallery.generate_live),
        [state, prompt, example, runs, *decoding],
        [shown, cards, table],
        api_visibility="private",
        concurrency_id="generation",
        concurrency_limit=2,
        show_progress_on=[cards],
    )
    tab.select(ui_event(handlers.prompt_for_data), [state, prompt], [prompt], queue=False, api_visibility="private")
    settings = [prompt, runs, *decoding]  # kept in the browser (compare_kept.SETTINGS): a reload gives them back
    changes = [component.change for component in settings]
    private = dict(queue=False, show_progress="hidden", api_visibility="private")
    gr.on(changes, ui_event(compare_kept.kept_compare), [opened, *settings], [kept], **private)
    typed = [component.input for component in settings]  # the user's own, also before the page load gave them back
    gr.on(typed, ui_event(compare_kept.typed_compare), settings, [kept], **private)
    return {"tab": tab, "listed": listed, "restored": [*settings, shown, cards, table, opened]}
