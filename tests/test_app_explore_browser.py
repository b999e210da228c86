"""The Explore tab in headless Chromium: its buttons are button-sized beside taller boxes; a reload gives back what
was typed there, in Compare and in the Train tab's Layers box.

Needs /usr/bin/chromium (bash scripts/setup.sh --test).
"""

import pytest
from browser_helpers import TABS, fill_number, open_tab, page_at, shot

pytestmark = pytest.mark.browser


def test_the_control_vector_button_is_one_line_high_beside_its_file_box(fresh_app_url):
    from playwright.sync_api import expect

    with page_at(fresh_app_url, {"width": 1400, "height": 1000}) as page:
        open_tab(page, "Explore")
        page.get_by_text("Arithmetic on RED runs", exact=False).first.click()
        button = page.locator("#explore-control-vector")
        expect(button).to_be_visible()
        shot(page, "explore_arithmetic")
        height = button.bounding_box()["height"]
        assert 20 < height < 80, f"the button is {height:.0f} px high"


def type_into(page, box: str, text: str) -> None:
    """Type ``text`` into ``box`` of a tab just opened; again if the tab's first drawing put its own value back."""
    for _ in range(5):
        page.locator(box).fill(text)
        page.wait_for_timeout(500)
        if page.locator(box).input_value() == text:
            return
    raise AssertionError(f"{box} did not keep {text!r}")


def test_a_reload_gives_back_what_was_typed_in_compare_explore_and_the_layers_box(fresh_app_url):
    from playwright.sync_api import expect

    typed = {"#compare-prompt textarea": "What is 4 plus 5?", "#explore-prompt textarea": "A small blue bird"}
    typed["#train-layers textarea"] = "last:8"
    with page_at(fresh_app_url, {"width": 1400, "height": 1000}) as page:
        for (box, text), tab in zip(typed.items(), ("Compare", "Explore", "Train"), strict=True):
            open_tab(page, tab)
            if tab == "Compare":  # the prompt typed last: its change keeps the whole of Compare's settings as they are
                page.get_by_text("Decoding (the same for every method)").click()
                fill_number(page, "max-new-tokens", 16)
                page.wait_for_timeout(500)
            type_into(page, box, text)
        page.wait_for_timeout(1000)  # each change is kept in the browser
        page.reload()
        expect(page.get_by_role("tab")).to_have_count(len(TABS))  # a state between two tabs would draw a tab more
        for (box, text), tab in zip(typed.items(), ("Compare", "Explore", "Train"), strict=True):
            open_tab(page, tab)
            expect(page.locator(box)).to_have_value(text)
            if tab == "Compare":
                page.get_by_text("Decoding (the same for every method)").click()
                expect(page.locator("#max-new-tokens input[type=number]")).to_have_value("16")
        shot(page, "explore_reload")
