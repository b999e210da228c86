"""What a narrow or hovered page shows (Chromium): table headers wrap at spaces, plot titles clear of the toolbar.

Screenshots go to artifacts/screenshots/ (git-ignored). Needs /usr/bin/chromium (bash scripts/setup.sh --test).
"""

import pytest
from browser_helpers import open_tab, page_at, shot

pytestmark = pytest.mark.browser

HEADERS = """() => [...document.querySelectorAll('#train-summary th span.header')].map(span => ({
    text: span.innerText.replace(/\\s+/g, ' ').trim(), wrap: getComputedStyle(span).overflowWrap,
    overflow: span.scrollWidth - span.clientWidth,
    lines: Math.round(span.getBoundingClientRect().height / parseFloat(getComputedStyle(span).lineHeight))}))"""
OVERLAP = """id => { const plot = document.querySelector(`#${id} .js-plotly-plot`);
    const title = plot.querySelector('.gtitle').getBoundingClientRect();
    const bar = plot.querySelector('.modebar').getBoundingClientRect();
    return {bar: bar.height, overlap: !(title.bottom <= bar.top || bar.bottom <= title.top ||
                                         title.right <= bar.left || bar.right <= title.left)}; }"""


def test_the_train_summary_headers_wrap_at_spaces_on_a_700_px_page(fresh_app_url):
    with page_at(fresh_app_url, {"width": 700, "height": 1000}) as page:
        open_tab(page, "Train")
        page.locator("#train-summary th span.header").first.wait_for()
        shot(page, "train-summary-700")
        headers = page.evaluate(HEADERS)
    assert [header["text"] for header in headers][:3] == ["method", "trainable params", "% of model"]
    for header in headers:
        assert header["wrap"] == "normal", header  # a word is never cut
        assert header["overflow"] <= 0, header  # and every word fits its column
        assert header["lines"] <= len(header["text"].split()), header  # so lines break at spaces only


def test_the_inspect_plot_titles_stay_clear_of_the_hover_toolbar(fresh_app_url):
    with page_at(fresh_app_url, {"width": 1400, "height": 1000}) as page:
        open_tab(page, "Inspect")  # the gallery's pirate RED run shows at once
        for plot in ("layers-plot-a", "scale-heatmap-a", "bias-heatmap-a"):
            page.locator(f"#{plot} .js-plotly-plot .main-svg").first.wait_for()
            page.locator(f"#{plot} .js-plotly-plot").hover()
            page.locator(f"#{plot} .modebar").wait_for()
            found = page.evaluate(OVERLAP, plot)
            assert found["bar"] > 0 and not found["overlap"], plot
        shot(page, "inspect-titles")
