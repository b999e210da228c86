"""A refused Train or Run ablation (no data loaded yet) says why and gives its button back at once (Chromium).

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
