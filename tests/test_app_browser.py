"""A person's session in headless Chromium with the real default model, a screenshot of every stage.

Screenshots go to artifacts/screenshots/ (git-ignored). Needs /usr/bin/chromium (bash scripts/setup.sh --test).
"""

import csv
import re
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from app_helpers import free_port
from app_process import start_app, stop_app, tiny_edits_zip
from browser_helpers import ARGS, SHOTS, TABS, fill_number, open_tab, pytest_chromium_or_skip, shot

from red_explorer.app.ui import build_demo
from red_explorer.app.ui.interface import launch_options
from red_explorer.app.ui.session import open_sessions

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

SLOW = 300_000  # ms: training the real model on a shared 2-core CPU
QUESTIONS = [(a, b) for a in range(2, 8) for b in range(3, 7)]


@pytest.fixture(scope="module")
def short_csv(tmp_path_factory) -> Path:
    """24 short pirate-speak sums: they fit a 64-token max length with SmolLM2's chat template."""
    path = tmp_path_factory.mktemp("browser") / "pirate_sums.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "response"])
        for a, b in QUESTIONS:
            writer.writerow([f"What is {a} plus {b}?", f"Arr! {a} plus {b} be {a + b}, matey!"])
    return path


@pytest.fixture(scope="module")
def app_url():
    demo = build_demo(preload=False)
    demo.queue(default_concurrency_limit=4).launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options()
    )
    yield demo.local_url
    demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    executable = pytest_chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.goto(app_url)
        yield page
        browser.close()


def test_a_teacher_demo_from_model_to_download(page, short_csv, tmp_path):
    from playwright.sync_api import expect

    expect(page.locator(".red-title")).to_contain_text("Explorer")
    expect(page.locator("#about-figure .red-wide svg")).to_be_visible()  # the stacked one is for narrow screens
    shot(page, "01_what_is_red")

    open_tab(page, "Model")
    page.click("#load-model")
    expect(page.locator("#param-plot .js-plotly-plot .main-svg").first).to_be_visible()
    expect(page.locator("#model-info")).to_contain_text("LlamaForCausalLM")
    expect(page.locator("#model-info")).to_contain_text("34,560")
    expect(page.locator("#model-status")).to_contain_text("ready")
    expect(page.locator("#model-diagram")).to_contain_text("SiLU(gate) ⊙ up")  # the loaded family's block
    shot(page, "02_model")
    a_bad_model_path_leaves_the_working_model_on_the_page(page)

    open_tab(page, "Data")
    bad = tmp_path / "colours.csv"
    bad.write_text("colour,size\nred,3\nblue,4\ngreen,5\nred,6\n")
    upload_then_close_the_message(page, "#data-upload", bad, "colour")
    expect(page.locator("#data-summary")).to_contain_text("colours.csv was not loaded")
    expect(page.locator("#data-summary")).to_contain_text("No data is loaded")
    expect(page.locator("#data-upload a[href$='colours.csv']")).to_have_count(0)  # the refused file is not shown
    shot(page, "03_bad_file")
    page.locator("#data-upload input[type=file]").set_input_files(str(short_csv))
    expect(page.locator("#length-plot .js-plotly-plot .main-svg").first).to_be_visible()
    expect(page.locator("#data-summary")).to_contain_text("prompt/response pairs")
    expect(page.locator("#data-summary")).to_contain_text("22 train, 2 validation")
    expect(page.locator("#data-preview")).to_contain_text("What is")
    expect(page.locator("#data-preview")).to_contain_text("Arr!")  # the response column is in view too
    fill_number(page, "max-length", 64)  # one max length, set here, for Train and Ablations
    expect(page.locator("#data-summary")).to_contain_text("(> 64)")
    shot(page, "03_data")
    a_bad_upload_keeps_the_loaded_data(page, bad)

    open_tab(page, "Train")
    expect(page.locator("#train-length-note")).to_contain_text("Max length 64 tokens")
    page.click("#stop-button")
    expect(page.locator("#train-status")).to_contain_text("Nothing is running")
    fill_number(page, "max-steps", 3)
    fill_number(page, "batch-size", 4)
    fill_number(page, "eval-every", 1)
    page.click("#train-button")
    expect(page.locator("#train-status")).to_contain_text("Training RED full (ffn)")
    shot(page, "04_training")
    expect(page.locator("#train-status")).to_contain_text("Done.", timeout=SLOW)
    expect(page.locator("#train-status")).to_contain_text("See Inspect for what RED learned")
    expect(page.locator("#train-summary")).to_contain_text("s/step")
    expect(page.locator("#loss-plot .js-plotly-plot .main-svg").first).to_be_visible()
    expect(page.locator("#loss-plot")).to_contain_text("RED full (ffn) · train")
    expect(page.locator("#train-summary")).to_contain_text("34.6K")
    expect(page.locator("#train-button")).to_have_text("Train")  # given back for the next run
    expect(page.locator("#train-button")).to_be_enabled()
    shot(page, "05_trained")

    open_tab(page, "Inspect")
    expect(page.locator("#layers-plot-a .js-plotly-plot .main-svg").first).to_be_visible()
    expect(page.locator("#inspect-summary")).to_contain_text("30 edited sites, 34,560 learned values")
    expect(page.locator("#scale-heatmap-a .js-plotly-plot .main-svg").first).to_be_visible()
    shot(page, "06_inspect")

    open_tab(page, "Ablations")
    expect(page.locator("#ablation-length-note")).to_contain_text("Max length 64 tokens")
    fill_number(page, "ablation-steps", 2)
    fill_number(page, "ablation-batch", 4)
    page.click("#ablation-button")
    expect(page.locator("#ablation-status")).to_contain_text("Done: 2/2", timeout=SLOW)
    expect(page.locator("#ablation-table")).to_contain_text("RED bias (ffn)")
    expect(page.locator("#ablation-button")).to_have_text("Run ablation")
    expect(page.locator("#ablation-button")).to_be_enabled()
    expect(page.locator("#ablation-plot .js-plotly-plot .main-svg").first).to_be_visible()
    shot(page, "07_ablations")

    open_tab(page, "Compare")  # the tab offers the data's first validation prompt; typing before it lands is lost
    expect(page.locator("#compare-prompt textarea")).to_have_value("What is 2 plus 3?")
    page.locator("#compare-prompt textarea").fill("What is 4 plus 5?")
    page.get_by_text("Decoding (the same for every method)").click()
    fill_number(page, "max-new-tokens", 16)
    expect(page.locator("#compare-runs")).to_contain_text("RED full (ffn)")
    page.click("#compare-button")
    # the base, the trained run and both ablation rows (kept runs too), in one batched generate call
    expect(page.locator("#compare-cards .gen-card")).to_have_count(4, timeout=SLOW)
    expect(page.locator("#compare-prompt-shown")).to_contain_text("one batched call")
    expect(page.locator("#compare-cards")).to_contain_text("batched call")  # its time is the call's, said once
    expect(page.locator("#compare-table")).to_contain_text("base")
    shot(page, "08_compare")
    the_explore_tab_reads_the_latest_run(page)

    open_tab(page, "Export")
    expect(page.locator("#export-run input")).to_have_value(re.compile(r"(› )?RED bias \(ffn\)$"))  # the latest run
    page.click("#export-edits")
    link = page.locator("#edits-file a").first
    expect(link).to_be_visible()
    with page.expect_download() as download_info:
        link.click()
    archive = tmp_path / "edits.zip"
    download_info.value.save_as(archive)
    assert {"red_config.json", "edits.safetensors"} <= set(zipfile.ZipFile(archive).namelist())
    expect(page.locator("#snippet")).to_contain_text("load_method")
    shot(page, "09_export")
    a_bad_edits_zip_keeps_the_runs(page, tmp_path)
    a_refused_control_vector_stays_on_the_page(page)
    a_reload_finds_the_runs_again(page)
    every_tab_at_phone_width(page)


def the_explore_tab_reads_the_latest_run(page) -> None:
    """Explore: the token strip (the run writes its text first) and the dose-response plot of the latest run."""
    from playwright.sync_api import expect

    open_tab(page, "Explore")
    expect(page.locator("#explore-run-choice input")).to_have_value(re.compile(r"RED bias \(ffn\)$"))
    page.click("#explore-drift")
    expect(page.locator("#drift-strip")).to_contain_text("prompt tokens (underlined), then", timeout=SLOW)
    page.click("#explore-dose")
    expect(page.locator("#dose-plot")).to_contain_text("strength α", timeout=SLOW)
    shot(page, "08b_explore")


def a_reload_finds_the_runs_again(page) -> None:
    """The browser keeps its owner key: after a reload the same model, data and runs are back, nothing retrained;
    Compare and Explore show what they last showed."""
    from playwright.sync_api import expect

    page.reload()
    open_tab(page, "Model")
    expect(page.locator("#model-status")).to_contain_text("ready")
    expect(page.locator("#model-info")).to_contain_text("Restored your last model and data (pirate_sums.csv)")
    open_tab(page, "Data")
    expect(page.locator("#data-summary")).to_contain_text("pirate_sums.csv")
    open_tab(page, "Compare")
    expect(page.locator("#compare-runs")).to_contain_text("RED full (ffn)")
    expect(page.locator("#compare-runs")).to_contain_text("RED bias (ffn)")
    expect(page.locator("#compare-prompt textarea")).to_have_value("What is 4 plus 5?")  # as typed
    expect(page.locator("#compare-cards .gen-card")).to_have_count(4)  # the last generations, shown, not made again
    open_tab(page, "Explore")  # the token strip and the dose-response as last shown, not computed again
    expect(page.locator("#drift-strip")).to_contain_text("prompt tokens (underlined), then")
    expect(page.locator("#dose-plot")).to_contain_text("strength α")
    open_tab(page, "Train")  # the loop settings as they were, not the defaults
    for element_id, value in (("max-steps", "3"), ("batch-size", "4"), ("eval-every", "1")):
        expect(page.locator(f"#{element_id} input[type=number]").first).to_have_value(value)
    number = r"\s+\d+\.\d+"  # the trained run's set-up, s/step and train time (kept with it), then its loss before
    expect(page.locator("#train-summary")).to_contain_text(re.compile(r"0\.0257%" + 3 * number + r"\s+\d\.\d+"))
    shot(page, "11_after_reload")


def every_tab_at_phone_width(page) -> None:
    """Every tab at 700 px: nothing makes the page scroll sideways; a screenshot of each to look at."""
    page.set_viewport_size({"width": 700, "height": 1000})
    for index, name in enumerate(TABS):
        open_tab(page, name)
        page.wait_for_timeout(300)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 702, f"the {name} tab is {width} px wide at a 700 px window"
        shot(page, f"12_narrow_{index}_{name.split()[0].lower()}")
    page.set_viewport_size({"width": 1400, "height": 1000})


def upload_then_close_the_message(page, box: str, path: Path, message: str) -> None:
    from playwright.sync_api import expect

    page.locator(f"{box} input[type=file]").set_input_files(str(path))
    toast = page.locator(".toast-body").filter(has_text=message).first
    expect(toast).to_be_visible()  # a message box, not a dead page
    toast.locator(".toast-close").click()


def no_error_badges(page, *ids: str) -> None:
    """A refused request leaves no "Error" badge on the components it would have filled."""
    from playwright.sync_api import expect

    for element_id in ids:
        expect(page.locator(f"#{element_id} .error")).to_have_count(0)


def a_bad_model_path_leaves_the_working_model_on_the_page(page) -> None:
    from playwright.sync_api import expect

    spec = page.locator("#model-spec input")
    spec.fill("/no/such/model")
    spec.press("Enter")
    page.click("#load-model")
    expect(page.locator("#model-info")).to_contain_text("/no/such/model was not loaded")
    expect(page.locator("#model-info")).to_contain_text("still uses default = SmolLM2-135M-Instruct")
    expect(page.locator("#model-info")).to_contain_text("LlamaForCausalLM")  # the model in use, still described
    expect(spec).to_have_value("default")  # the box names the model in use, not the refused path
    expect(page.locator("#model-status")).to_contain_text("SmolLM2-135M-Instruct (causal-lm) on cpu: ready")
    expect(page.locator("#param-plot .js-plotly-plot .main-svg").first).to_be_visible()
    no_error_badges(page, "model-info", "param-plot", "model-diagram")
    shot(page, "02b_bad_model_path")
    page.locator(".toast-body .toast-close").first.click()


def a_bad_upload_keeps_the_loaded_data(page, bad: Path) -> None:
    from playwright.sync_api import expect

    page.locator("#data-upload button[aria-label='Clear']").first.click()
    upload_then_close_the_message(page, "#data-upload", bad, "colour")
    expect(page.locator("#data-summary")).to_contain_text("Still loaded: pirate_sums.csv (22 train, 2 validation")
    expect(page.locator("#data-summary")).to_contain_text("22 train, 2 validation")
    expect(page.locator("#data-preview")).to_contain_text("What is")
    expect(page.locator("#data-upload a[href$='colours.csv']")).to_have_count(0)
    no_error_badges(page, "data-summary", "data-preview", "length-plot")
    shot(page, "03b_bad_file_after_good")


def a_bad_edits_zip_keeps_the_runs(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    upload_then_close_the_message(page, "#import-file", bad, "bad.zip")
    expect(page.locator("#import-status")).to_contain_text("bad.zip was not loaded")
    expect(page.locator("#import-status")).to_contain_text("RED full (ffn)")
    expect(page.locator("#import-status")).to_contain_text("RED bias (ffn)")
    expect(page.locator("#export-run input")).to_have_value(re.compile(r"(› )?RED bias \(ffn\)$"))
    expect(page.locator("#import-file a[href$='bad.zip']")).to_have_count(0)
    no_error_badges(page, "import-status", "export-run")
    shot(page, "10_bad_edits_zip")


def a_refused_control_vector_stays_on_the_page(page) -> None:
    """The ablation's bias-only run edits layer 0: refused by its label, the reason kept; bias only passes."""
    from playwright.sync_api import expect

    page.click("#export-control-vector")
    toast = page.locator(".toast-body").filter(has_text="edits layer 0").first
    expect(toast).to_be_visible()
    toast.locator(".toast-close").click()
    status = page.locator("#export-status")
    expect(status).to_contain_text("RED bias (ffn) edits layer 0, which llama.cpp never steers")
    expect(status).to_contain_text("bias only, layers ≥ 1")
    no_error_badges(page, "control-vector-file", "export-status")
    page.locator("#export-bias-only input").check()
    page.click("#export-control-vector")
    expect(status).to_contain_text("ready: layers 1-29; left out: the bias of layer 0", timeout=SLOW)
    expect(page.locator("#control-vector-file a").first).to_be_visible()
    shot(page, "10b_control_vector")


def test_closing_a_tab_frees_its_session(page, app_url):
    """A tab of a browser of its own (nothing of an earlier visit to restore), counted once its page has loaded."""
    from playwright.sync_api import expect

    expect(page.locator("#model-status")).not_to_contain_text("starting")  # the first page's session exists
    before = open_sessions()
    context = page.context.browser.new_context()
    second = context.new_page()
    second.goto(app_url)
    expect(second.locator("#model-status")).to_contain_text("open sessions")
    assert open_sessions() == before + 1
    second.wait_for_timeout(2000)  # the page-load chain (restore nothing, max length) ends
    context.close()  # the heartbeat stops: Gradio runs demo.unload, which deletes the session's state
    for _ in range(120):
        if open_sessions() == before:
            break
        page.wait_for_timeout(250)
    assert open_sessions() == before


def test_a_restarted_app_lists_the_browsers_runs_again(page, tmp_path):
    """Import a run, restart the server process on the same home, reload the page: the run is still listed."""
    from playwright.sync_api import expect

    model, archive = tiny_edits_zip(tmp_path)
    home, port, log = tmp_path / "home", free_port(), tmp_path / "app.log"
    process = start_app(home, port, log)
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})  # a browser of its own
    try:
        visitor = context.new_page()
        visitor.goto(f"http://127.0.0.1:{port}/")
        open_tab(visitor, "Model")
        visitor.locator("#model-spec input").fill(str(model))
        visitor.click("#load-model")
        expect(visitor.locator("#model-status")).to_contain_text("ready", timeout=120_000)
        open_tab(visitor, "Export")
        visitor.locator("#import-file input[type=file]").set_input_files(str(archive))
        expect(visitor.locator("#import-status")).to_contain_text("Loaded RED full (ffn)", timeout=120_000)
        stop_app(process)
        process = start_app(home, port, log)
        reopen(visitor, f"http://127.0.0.1:{port}/")
        open_tab(visitor, "Export")
        expect(visitor.locator("#runs-overview")).to_contain_text("RED full (ffn)", timeout=60_000)
        shot(visitor, "13_after_restart")
    finally:
        context.close()
        stop_app(process)
    assert stat.S_IMODE((home / "browser-secret").stat().st_mode) == 0o600


def reopen(page, url: str) -> None:
    """Open ``url`` again in the same browser (its local storage kept); a page that was reconnecting to the
    restarted server may abort the first navigation itself, so one more try is allowed."""
    from playwright.sync_api import Error

    try:
        page.goto(url)
    except Error:
        page.wait_for_timeout(1000)
        page.goto(url)
