"""The guided lesson walked in headless Chromium at a projector's 1280×800: every step opens its tab, points at its
control, never scrolls sideways, and a reload opens the same step; step 2 shows a gallery run's answers at once.

Screenshots go to artifacts/screenshots/ (git-ignored). Needs /usr/bin/chromium (bash scripts/setup.sh --test).
"""

import pytest
from browser_helpers import SHOTS, page_at, shot

from red_explorer.app.lesson_text import STEPS

pytestmark = pytest.mark.browser
PROJECTOR = {"width": 1280, "height": 800}
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def expect_step(page, index: int) -> None:
    """The panel shows step ``index``, its tab is open, its control is pointed at, and nothing scrolls sideways."""
    from playwright.sync_api import expect

    step = STEPS[index]
    expect(page.locator("#lesson-heading")).to_contain_text(f"step {index + 1} of {len(STEPS)} · {step.title}")
    expect(page.get_by_role("tab", name=step.tab_label, exact=True, selected=True)).to_be_visible()
    expect(page.locator(f"#{step.focus}")).to_have_class(class_pattern("lesson-focus"))
    page.wait_for_timeout(300)
    assert page.evaluate(NO_SIDEWAYS_SCROLL), f"step {index + 1} scrolls sideways at 1280 px"
    assert framed(page, step.focus), f"step {index + 1}: no red frame to be seen around #{step.focus}"


def framed(page, focus: str) -> bool:
    """Whether the control's red frame is what one sees along most of its left edge (not what the control draws;
    the lesson panel may cover its top)."""
    from io import BytesIO

    from PIL import Image

    image = Image.open(BytesIO(page.locator(f"#{focus}").screenshot())).convert("RGB")
    image.save(SHOTS / f"lesson_focus_{focus}.png")
    edge = [image.getpixel((1, row)) for row in range(10, image.height - 10)]
    red = [red > 150 and green < 110 and blue < 110 for red, green, blue in edge]
    return sum(red) >= len(red) / 2


def class_pattern(name: str):
    import re

    return re.compile(rf"(^|\s){name}(\s|$)")


def test_the_lesson_walks_every_tab_at_1280_px_and_a_reload_opens_the_same_step(fresh_app_url):
    from playwright.sync_api import expect

    with page_at(fresh_app_url, PROJECTOR, timeout_ms=30_000) as page:
        page.click("#lesson-start")
        expect_step(page, 0)
        expect(page.locator("#lesson-back")).to_be_hidden()  # nothing before the first step
        shot(page, "lesson_1")
        for index in range(1, len(STEPS)):
            page.click("#lesson-next")
            expect_step(page, index)
            if index == 1:  # the gallery's pirate RED run, ticked, with its recorded answers at once
                expect(page.locator("#compare-prepared")).to_contain_text("Arr! The French be cap")
            if index == 2:  # and shown layer by layer, with no run of the class's own
                expect(page.locator("#inspect-summary")).to_contain_text("Pirate style · RED: 30 edited sites")
                expect(page.locator("#layers-plot-a .main-svg").first).to_be_visible()
                assert framed(page, "layers-plot-a"), "the plot is drawn over the step's frame"
            if index == 3:  # no data loaded yet: the step loads the pirate sample, so Run ablation has data
                loaded = "the lesson loaded the bundled sample **"[:-3]
                expect(page.locator("#lesson-text")).to_contain_text(loaded, timeout=180_000)
                expect(page.locator("#ablation-length-note")).to_contain_text("training examples")
            if index == 4:  # beside the gallery's pirate LoRA run
                expect(page.locator("#compare-prepared")).to_contain_text("Pirate style · LoRA r=8")
            shot(page, f"lesson_{index + 1}")
        expect(page.locator("#lesson-next")).to_be_hidden()  # the last step: Back or End lesson
        page.click("#lesson-back")
        expect_step(page, len(STEPS) - 2)
        expect(page.locator("#lesson-next")).to_be_visible()

        page.reload()  # the same browser (its owner key) finds its step again
        expect_step(page, len(STEPS) - 2)
        page.screenshot(path=str(SHOTS / "lesson_after_reload.png"))  # the viewport a class sees
        page.click("#lesson-end")
        expect(page.locator("#lesson-panel")).to_be_hidden()
        expect(page.locator("#lesson-start")).to_be_visible()
        page.reload()
        expect(page.locator("#lesson-start")).to_be_visible()
        expect(page.locator("#lesson-panel")).to_be_hidden()
