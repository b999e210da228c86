"""A teacher opens the app cold, picks a gallery run in Compare and sees its prepared answers at once (Chromium).

Screenshots go to artifacts/screenshots/ (git-ignored). Needs /usr/bin/chromium (bash scripts/setup.sh --test).
"""

import time
from html import escape

import pytest
from browser_helpers import ARGS, SHOTS, open_tab, pytest_chromium_or_skip, shot

from red_explorer.runs.gallery import gallery_entry, gallery_runs

pytestmark = pytest.mark.browser
PIRATE = "Pirate style · RED"


def test_a_cold_page_shows_a_gallery_runs_prepared_generations_in_compare(fresh_app_url):
    executable = pytest_chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    entry = next(gallery_entry(record) for record in gallery_runs() if record.label == PIRATE)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(fresh_app_url)
        started = time.monotonic()
        open_tab(page, "Compare")
        prepared = page.locator("#compare-prepared")
        expect(prepared).to_contain_text("Ready-made gallery runs")
        page.locator("#compare-runs input").click()
        page.get_by_role("option", name=f"Gallery › {PIRATE}", exact=True).click()
        for item in entry.showcase:
            expect(prepared).to_contain_text(item.run)
            expect(prepared).to_contain_text(item.base)
        expect(prepared).to_contain_text(entry.decoding)
        assert time.monotonic() - started < 10  # a class never waits for the first result
        expect(page.locator("#compare-live")).to_be_visible()
        assert escape(PIRATE) in prepared.inner_html()
        page.keyboard.press("Escape")  # close the run list: the screenshot shows the prepared view whole
        shot(page, "gallery_compare_prepared")
        browser.close()
