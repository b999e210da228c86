"""The Explore tab's layout in headless Chromium: its buttons are button-sized beside taller boxes.

Needs /usr/bin/chromium (bash scripts/setup.sh --test).
"""

import pytest
from browser_helpers import open_tab, page_at, shot

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
