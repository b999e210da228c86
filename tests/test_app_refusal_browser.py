"""A refused Train or Run ablation (no data loaded yet) says why and gives its button back at once; a failed demo
gives back every demo button, greyed while it ran (Chromium).

Gradio's page runs only the ``.failure`` links of an event that raised, not its ``.then`` links: the button,
greyed while the job runs, was left saying "Training… (Stop ends it)" until a reload.
"""

import pytest
from browser_helpers import open_tab, page_at, shot

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    ("tab", "button", "idle"), [("Train", "train-button", "Train"), ("Ablations", "ablation-button", "Run ablation")]
)
def test_a_refused_job_gives_its_button_back(fresh_app_url, tab, button, idle):
    from playwright.sync_api import expect

    with page_at(fresh_app_url, {"width": 1280, "height": 900}) as page:
        open_tab(page, tab)
        page.locator(f"#{button}").click()
        expect(page.locator(".toast-body").first).to_contain_text("no data loaded yet")
        expect(page.locator(f"#{button}")).to_have_text(idle, timeout=10_000)
        expect(page.locator(f"#{button}")).to_be_enabled()
        shot(page, f"refused-{button}")


def test_every_demo_button_is_greyed_while_a_demo_runs_and_given_back_after_it_failed(fresh_app_url, monkeypatch):
    import time

    from playwright.sync_api import expect

    from red_explorer.app.ui.handlers import model

    def failing_demo(*args, **kwargs):
        time.sleep(3)  # long enough for the page to show the buttons greyed
        raise ValueError("the demo's sample could not be read")

    monkeypatch.setattr(model, "run_preset", failing_demo)
    with page_at(fresh_app_url, {"width": 1280, "height": 900}) as page:
        open_tab(page, "Model")
        buttons = page.locator("button[id^='demo-']")
        expect(buttons).to_have_count(3)
        buttons.first.click()
        for index in range(3):
            expect(buttons.nth(index)).to_be_disabled()
        shot(page, "demo-running-buttons-greyed")
        expect(page.locator(".toast-body").first).to_contain_text("the demo's sample could not be read")
        for index in range(3):
            expect(buttons.nth(index)).to_be_enabled(timeout=10_000)
