"""The app: a header with the model status, then one tab per task; per-session state, cleanup on close."""

from __future__ import annotations

import os

import gradio as gr

from red_explorer.app.browser_secret import browser_secret
from red_explorer.app.model_registry import SHARED_MODELS, ModelKey
from red_explorer.app.ui.components import ablate, about, compare, data, explore, export, inspect, model, train
from red_explorer.app.ui.components import lesson as lesson_panel
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import compare as compare_handlers
from red_explorer.app.ui.handlers import compare_kept, explore_kept, shares, train_settings
from red_explorer.app.ui.handlers import data as data_handlers
from red_explorer.app.ui.handlers.model import model_status, restore_last
from red_explorer.app.ui.session import Session, keep_closing_idle

DEFAULT_CONCURRENCY = 4
STATUS_SECONDS = 3.0
OWNER_STORAGE_KEY = "red-explorer-owner"  # where the browser keeps its owner key
MAX_UPLOAD_BYTES = 100_000_000  # a data file or an edits zip (the largest zip an import accepts)
CACHE_CLEANUP = (3600, 3600)  # every hour, delete the uploads and downloads older than an hour
DEFAULT_IDLE_MINUTES = 60  # a session unused this long (an API client's: it never says it left) is freed

HEADER = """
<div class="red-header">
  <div class="red-title"><span class="red-mark">RED</span> Explorer</div>
  <div class="red-subtitle">Fine-tune a frozen transformer by editing its representations:
  <code>h' = scale ⊙ h + bias</code> after each FFN — and compare with LoRA and TARE.</div>
</div>
"""

CSS = """
.red-header {padding: 10px 4px 2px 4px;}
.red-title {font-size: 28px; font-weight: 700; letter-spacing: -0.5px;}
.red-mark {background: #c0392b; color: white; border-radius: 8px; padding: 0 8px; margin-right: 2px;}
.red-subtitle {color: #566573; font-size: 15px; margin-top: 4px;}
.red-diagram {background: white; border: 1px solid #e5e7e9; border-radius: 12px; padding: 10px 14px;}
#model-status {font-size: 14px;}
.gen-grid {display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 12px;}
.gen-card {border: 1px solid #d5d8dc; border-top: 5px solid #7f8c8d; border-radius: 10px; padding: 10px 12px;
           background: white;}
.gen-card.red {border-top-color: #c0392b;} .gen-card.lora {border-top-color: #2471a3;}
.gen-card.tare {border-top-color: #7d3c98;}
.gen-head {display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-bottom: 8px;}
.gen-head b {margin-right: auto; font-size: 15px;}
.pill {background: #f2f3f4; border-radius: 999px; padding: 1px 9px; font-size: 12px; color: #34495e;}
.red-status {font-size: 15px; padding: 4px 2px;}
.red-bar {height: 10px; background: #eaecee; border-radius: 6px; margin-top: 8px; overflow: hidden;}
.red-bar > div {height: 100%; background: #c0392b; border-radius: 6px; transition: width 0.6s ease;}
.gen-text {white-space: pre-wrap; font-size: 14.5px; line-height: 1.45; color: #1b2631;}
.red-caption {font-size: 13.5px; color: #2c3e50; margin: 6px 4px 0 4px;}
.red-note {font-size: 13px; color: #566573;}
.red-narrow {display: none;}
.table-container th {min-width: 5.5em;}  /* every table (gr.Dataframe): headers break between words, not letters */
.table-container th span.header {overflow-wrap: normal !important; word-break: normal !important;}
#memory-plan :is(th, td) {overflow-wrap: normal; word-break: normal;}  /* a narrow page wraps at spaces only */
.secondary-wrap:has(> .icon-wrap) > input {padding-right: calc(2 * var(--size-5)); text-overflow: ellipsis;}
#compare-cards:has(.pending) {min-height: 8rem;}  /* room for the progress: it stays off the table's title */
@media (max-width: 820px) {.red-wide {display: none;} .red-narrow {display: block;}
  .table-container th {min-width: 0;}  /* fit, no side scroll */
  .table-container * {font-size: 11px !important; word-break: normal !important;}
  .table-container :is(td, th) {padding: 4px 3px !important;}
  .table-container th :is(.cell-wrap, .header-content) {padding: 0 !important;
    gap: 0 !important;}  /* a header's words get the column's whole width, in the page's (narrower) font: */
  .table-container th span.header {font-family: var(--font) !important;}}
"""
CSS += lesson_panel.CSS  # the guided lesson's panel and projector type


def theme() -> gr.themes.Base:
    """A light theme with RED's colour and local fonts only (no web font requests)."""
    return gr.themes.Soft(
        primary_hue=gr.themes.colors.red,
        neutral_hue=gr.themes.colors.slate,
        font=(gr.themes.Font("Inter"), "Liberation Sans", "Arial", "sans-serif"),
        font_mono=(gr.themes.Font("Liberation Mono"), "Menlo", "monospace"),
    ).set(
        block_label_background_fill="*neutral_100",
        block_label_text_color="*neutral_700",
        block_title_text_color="*neutral_700",
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_700",
        button_primary_text_color="white",
    )


def launch_options() -> dict:
    """What ``launch()`` needs besides the address (Gradio 6 takes theme and CSS there), with the upload limit."""
    # no run-history page: its footer link ("Runs ⟲") would lead away from the app to Gradio's own page
    return {
        "theme": theme(),
        "css": CSS,
        "ssr_mode": False,
        "max_file_size": MAX_UPLOAD_BYTES,
        "run_history": False,
        "footer_links": ["api", "gradio", "settings"],
    }


def training_concurrency() -> int:
    """Training jobs that run at once across all sessions ($RED_EXPLORER_TRAINING_JOBS, default 1)."""
    return max(1, int(os.environ.get("RED_EXPLORER_TRAINING_JOBS", "1")))


def idle_seconds() -> float:
    """How long a session may stay unused before its data is freed ($RED_EXPLORER_IDLE_MINUTES, default 60)."""
    return 60 * float(os.environ.get("RED_EXPLORER_IDLE_MINUTES") or DEFAULT_IDLE_MINUTES)


def _start(session: Session, owner: str | None = None) -> tuple[str, Session, str]:
    """Page load: the status line, the session handed back to Gradio's state holder, and the owner key.

    The owner key lives in the browser (``gr.BrowserState``): a random one is made on the first visit,
    and every later visit (a reload, after a server restart) finds that browser's kept runs again.
    """
    key = session.adopt_owner(owner)
    return model_status(session), session, key


def _open_shared(session: Session, request: gr.Request) -> str:
    """A page opened from a share link (``?run=TOKEN``): that run listed read-only, or why it cannot be."""
    return ui_event(shares.open_link)(session, request.query_params.get(shares.LINK_PARAMETER))


def _component(demo: gr.Blocks, elem_id: str):
    """The component of ``demo`` (built so far) whose elem_id is ``elem_id``."""
    found = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == elem_id]
    if len(found) != 1:
        raise LookupError(f"expected one component with elem_id {elem_id!r}, found {len(found)}")
    return found[0]


def build_demo(preload: bool = True, show_cli_runs: bool = False) -> gr.Blocks:
    """Compose the tabs. ``preload`` starts loading the default model in the background right away;
    ``show_cli_runs`` offers the command line's runs for copying (see ``serving``: loopback only)."""
    jobs = training_concurrency()
    with gr.Blocks(title="RED Explorer", delete_cache=CACHE_CLEANUP) as demo:
        state = gr.State(Session(show_cli_runs=show_cli_runs), delete_callback=Session.close)
        # The secret outlives the process (see browser_secret): after a restart the browser still reads its key.
        owner = gr.BrowserState("", storage_key=OWNER_STORAGE_KEY, secret=browser_secret())
        kept_loop = train.kept_loop_state()  # the Train tab's loop settings, kept in the browser
        kept_compare = compare.kept_state()  # Compare's prompt, ticked runs and decoding, kept in the browser
        kept_explore = explore.kept_state()  # Explore's runs, prompt and arithmetic settings, kept in the browser
        gr.HTML(HEADER)
        status = gr.Markdown("○ Base model **default**: starting…", label="Model status", elem_id="model-status")
        shared_note = gr.Markdown(elem_id="shared-note")
        max_length = gr.Slider(
            16,
            1024,
            value=128,
            step=16,
            label="Max length (tokens): Train and Ablations cut each example here",
            elem_id="max-length",
            render=False,
        )
        lesson = lesson_panel.build()  # the guided lesson, above the tabs it walks through
        with gr.Tabs() as tabs:
            about.build()
            model_tab = model.build(state, status, max_length)
            data.build(state, max_length)
            train_tab = train.build(state, max_length, jobs, kept_loop)
            inspect.build(state)
            ablate.build(state, max_length, jobs)
            compare_tab = compare.build(state, kept_compare)
            explore_tab = explore.build(state, max_length, kept_explore)
            export.build(state, show_cli_runs)
        model.wire_demos(model_tab, state, tabs, [_component(demo, name) for name in model.COMPARE_IDS])
        refresh = ui_event(model_status)
        # Returning the session as an output registers it with Gradio's state holder, so that
        # delete_state() (below, when the tab closes) calls its delete_callback.
        loading = demo.load(
            _start, [state, owner], [status, state, owner], api_visibility="private", show_progress="hidden"
        ).then(_open_shared, [state], [shared_note], api_visibility="private", show_progress="hidden")
        # the owner's last model and data again (kept in their run-store folder), and the Model tab's panels
        loading = loading.then(
            ui_event(restore_last),
            [state],
            [*model_tab["shown"], *model_tab["controls"]],
            api_visibility="private",
            show_progress_on=[model_tab["shown"][0]],
        )
        restoring = (
            (data_handlers.restored_length, [state], [max_length]),  # the max length they last set (their runs used it)
            (compare_handlers.listed_runs, [state], [compare_tab["listed"]]),  # Compare ticks the runs trained after
            (train_settings.restored, [kept_loop], train_tab["kept"]),  # the Train tab's loop settings and layers
            # Compare's and Explore's settings as the browser kept them, and what they last showed (none made now)
            (compare_kept.restore_compare, [state, kept_compare], compare_tab["restored"]),
            (explore_kept.restore_explore, [state, kept_explore], explore_tab["restored"]),
        )
        for handler, inputs, outputs in restoring:
            loading = loading.then(ui_event(handler), inputs, outputs, api_visibility="private", show_progress="hidden")
        selectors = [_component(demo, name) for name in lesson_panel.SELECTOR_IDS]
        lesson_panel.wire(demo, lesson, state, owner, selectors)  # its steps pick runs; a reload reopens its step
        gr.Timer(STATUS_SECONDS).tick(refresh, [state], [status], api_visibility="private", show_progress="hidden")

        def close_session(request: gr.Request) -> None:
            """The tab closed: free the page's data and files now (not an hour later); its runs stay kept on disk."""
            demo.state_holder.delete_state(request.session_hash)

        demo.unload(close_session)
    keep_closing_idle(idle_seconds())
    if preload:
        SHARED_MODELS.preload(ModelKey())
    return demo
