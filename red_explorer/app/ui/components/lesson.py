"""The guided lesson's panel above the tabs: each step's words beside the live tab it opens, Back / Next."""

from __future__ import annotations

import gradio as gr

from red_explorer.app.lesson_text import START
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import lesson as handlers

CSS = """
#lesson-start {max-width: 420px; margin-left: auto;}
#lesson-panel {position: sticky; top: 0; z-index: 50; background: #fdf2f0; border: 2px solid #c0392b;
               border-radius: 12px; padding: 8px 16px 10px 16px; box-shadow: 0 4px 14px rgba(0, 0, 0, 0.12);}
#lesson-heading h3 {font-size: 26px; margin: 2px 0 4px 0; color: #922b21;}
#lesson-text, #lesson-text p {font-size: 21px; line-height: 1.4; color: #1b2631;}
#lesson-panel button {font-size: 20px; min-height: 46px;}
.lesson-focus {position: relative; border-radius: 8px; scroll-margin-top: 300px;}
/* a frame laid over the control, inside its box (a parent that clips its overflow still shows it) and above what the
   control draws (a plot's positioned layers hid an outline), below the lesson panel (z-index 50) */
.lesson-focus::after {content: ""; position: absolute; inset: 0; border: 4px solid #c0392b; border-radius: 8px;
               pointer-events: none; z-index: 40;}
body.red-lesson .gradio-container {--text-sm: 15px; --text-md: 17px; --text-lg: 19px; --text-xl: 24px;
               --block-label-text-size: 15px; --block-info-text-size: 15px; --button-large-text-size: 18px;
               --block-title-text-size: 16px; --checkbox-label-text-size: 16px; --input-text-size: 16px;
               --text-xs: 13px; --button-small-text-size: 16px; --section-header-text-size: 16px;}
body.red-lesson .prose {font-size: 17px;}
body.red-lesson button[role="tab"] {font-size: 18px;}
"""

# After each step the page does what a person would: click the step's tab (its own select events then refresh it),
# point at the live control the step explains, and switch the projector type on (or off outside the lesson).
FOLLOW_JS = """
(target) => {
  document.querySelectorAll('.lesson-focus').forEach((element) => element.classList.remove('lesson-focus'));
  document.body.classList.toggle('red-lesson', Boolean(target));
  if (!target) return [];
  const [label, focus] = target.split('|');
  const named = (selector) => [...document.querySelectorAll(selector)].find((b) => b.textContent.trim() === label);
  const tab = named('button[role="tab"]');
  if (tab && tab.getAttribute('aria-selected') !== 'true') tab.click();
  if (!tab) {  // a narrow window keeps the last tabs in a "…" menu
    document.querySelector('.overflow-menu > button')?.click();
    setTimeout(() => named('.overflow-dropdown button')?.click(), 100);
  }
  setTimeout(() => {
    const control = document.getElementById(focus);
    if (control) {
      control.classList.add('lesson-focus');
      control.scrollIntoView({block: 'nearest'});
    }
  }, 400);
  return [];
}
"""


PRIVATE = dict(api_visibility="private", show_progress="hidden", queue=False)  # page-only events, quick


# The run lists a step may set (see handlers.SELECTORS): Inspect's Run A, Compare's ticked runs, Explore's run.
SELECTOR_IDS = ("inspect-run-a", "compare-runs", "explore-run-choice")
LENGTH_NOTE_ID = "ablation-length-note"  # the Ablations tab's max-length line, shown again when a step loads data


def build() -> dict:
    """The start button and the (hidden) lesson panel; call it above the tabs, and ``wire`` once the tabs exist."""
    start = gr.Button(START, size="sm", elem_id="lesson-start")
    with gr.Column(visible=False, elem_id="lesson-panel") as panel:
        heading = gr.Markdown(elem_id="lesson-heading")
        text = gr.Markdown(elem_id="lesson-text")
        with gr.Row():
            back = gr.Button("◀ Back", elem_id="lesson-back")
            forward = gr.Button("Next ▶", variant="primary", elem_id="lesson-next")
            end = gr.Button("End lesson", variant="secondary", elem_id="lesson-end")
    target = gr.Textbox(visible=False, elem_id="lesson-target")
    moves = {start: handlers.start, forward: handlers.next_step, back: handlers.previous_step, end: handlers.end}
    return {"outputs": [start, panel, heading, text, target, back, forward], "moves": moves}


def wire(demo: gr.Blocks, parts: dict, state: gr.State, owner: gr.BrowserState, selectors: list) -> None:
    """The buttons' events (they also set the ``selectors``, the run lists of SELECTOR_IDS), and a page load that
    opens the step the browser's owner was at (after the app's own page-load events)."""
    outputs = parts["outputs"] + selectors
    target = parts["outputs"][4:5]  # the tab and control the page follows
    # the step's sample when no data is loaded (queued: it may wait for the model to finish loading), and the
    # Ablations tab's max-length line on it
    note = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == LENGTH_NOTE_ID)
    sample = dict(fn=ui_event(handlers.load_sample), inputs=[state, owner], outputs=[parts["outputs"][3], note])
    for button, handler in parts["moves"].items():
        moved = button.click(ui_event(handler), [state, owner], outputs, **PRIVATE)
        moved.then(None, target, None, js=FOLLOW_JS)
        moved.then(**sample, api_visibility="private", show_progress="hidden")
    demo.load(ui_event(handlers.restore), [owner], outputs, **PRIVATE).then(None, target, None, js=FOLLOW_JS)
