"""Headless Chromium for the app's browser tests: launch arguments, a page at a URL, tabs, numbers, screenshots.

Screenshots go to artifacts/screenshots/ (git-ignored). Needs /usr/bin/chromium (bash scripts/setup.sh --test).
"""

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
TABS = ("What is RED?", "Model", "Data", "Train", "Inspect", "Ablations", "Compare", "Explore", "Export")
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]


def pytest_chromium_or_skip() -> str:
    if CHROMIUM.exists():
        return str(Path("/usr/lib/chromium/chromium") if Path("/usr/lib/chromium/chromium").exists() else CHROMIUM)
    if os.environ.get("CI") == "true":
        pytest.fail("CI must run the browser tests: install chromium (bash scripts/setup.sh --test)")
    pytest.skip("no /usr/bin/chromium here: install it with `bash scripts/setup.sh --test` to run the browser tests")


@contextmanager
def page_at(url: str, viewport: dict, timeout_ms: int = 60_000):
    """A headless Chromium page on ``url`` at ``viewport`` (skips where Chromium is missing); closed after."""
    executable = pytest_chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=timeout_ms)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        page = browser.new_context(viewport=viewport).new_page()
        page.goto(url)
        try:
            yield page
        finally:
            browser.close()


def shot(page, name: str) -> None:
    page.wait_for_timeout(600)  # let plotly finish its transitions
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def fill_number(page, element_id: str, value) -> None:
    box = page.locator(f"#{element_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=TABS[0], exact=True).wait_for()  # the tab bar is drawn (after a reload too)
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
        return
    page.locator(".overflow-menu > button").first.click()  # a narrow window keeps the last tabs in a "…" menu
    page.locator(".overflow-dropdown button").filter(has_text=name).first.click()
