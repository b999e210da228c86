"""What a narrow or hovered page shows (Chromium): table headers wrap at spaces, plot titles clear of the toolbar,
dropdown text clear of its arrow, Compare's progress clear of its table's title.

Screenshots go to artifacts/screenshots/ (git-ignored). Needs /usr/bin/chromium (bash scripts/setup.sh --test).
"""

import pytest
from browser_helpers import open_tab, page_at, shot

pytestmark = pytest.mark.browser

HEADERS = """id => [...document.querySelectorAll(`#${id} th span.header`)].map(span => ({
    text: span.innerText.replace(/\\s+/g, ' ').trim(), wrap: getComputedStyle(span).overflowWrap,
    overflow: span.scrollWidth - span.clientWidth,
    lines: Math.round(span.getBoundingClientRect().height / parseFloat(getComputedStyle(span).lineHeight))}))"""
OVERLAP = """id => { const plot = document.querySelector(`#${id} .js-plotly-plot`);
    const title = plot.querySelector('.gtitle').getBoundingClientRect();
    const bar = plot.querySelector('.modebar').getBoundingClientRect();
    return {bar: bar.height, overlap: !(title.bottom <= bar.top || bar.bottom <= title.top ||
                                         title.right <= bar.left || bar.right <= title.left)}; }"""


def words_wrap_at_spaces(headers: list[dict]) -> None:
    for header in headers:
        assert header["wrap"] == "normal", header  # a word is never cut
        assert header["overflow"] <= 0, header  # and every word fits its column
        assert header["lines"] <= len(header["text"].split()), header  # so lines break at spaces only


def test_the_train_summary_headers_wrap_at_spaces_on_a_700_px_page(fresh_app_url):
    with page_at(fresh_app_url, {"width": 700, "height": 1000}) as page:
        open_tab(page, "Train")
        page.locator("#train-summary th span.header").first.wait_for()
        shot(page, "train-summary-700")
        headers = page.evaluate(HEADERS, "train-summary")
    assert [header["text"] for header in headers][:3] == ["method", "trainable params", "% of model"]
    words_wrap_at_spaces(headers)


ARROW = """id => { const wrap = document.querySelector(`#${id} .secondary-wrap`);
    const input = wrap.querySelector('input'), arrow = wrap.querySelector('.icon-wrap').getBoundingClientRect();
    const text = input.getBoundingClientRect().right - parseFloat(getComputedStyle(input).paddingRight);
    return {text: text, arrow: arrow.left, value: input.value}; }"""


def test_every_table_header_and_dropdown_reads_whole_on_a_700_px_page(fresh_app_url):
    with page_at(fresh_app_url, {"width": 700, "height": 1000}) as page:
        from playwright.sync_api import expect

        for tab, table in (("Compare", "compare-table"), ("Ablations", "ablation-table")):
            open_tab(page, tab)
            page.locator(f"#{table} th span.header").first.wait_for()
            headers = page.evaluate(HEADERS, table)
            assert len(headers) >= 6, table
            words_wrap_at_spaces(headers)
        shot(page, "ablation-table-700")
        found = []
        for tab, dropdown in (("Data", "data-sample"), ("Inspect", "inspect-run-a")):
            open_tab(page, tab)
            expect(page.locator(f"#{dropdown} input")).not_to_have_value("")
            found.append(page.evaluate(ARROW, dropdown))
        shot(page, "inspect-700")
    for dropdown in found:
        assert dropdown["text"] <= dropdown["arrow"], dropdown  # the name (a sample, a run) ends before the arrow


PROGRESS = """() => { const title = document.querySelector('#compare-table .label').getBoundingClientRect();
    const boxes = [...document.querySelectorAll('#compare-cards .progress-text, #compare-cards .progress-level')];
    return boxes.filter(box => box.offsetParent).map(box => box.getBoundingClientRect()).map(box => !(
        box.bottom <= title.top || title.bottom <= box.top || box.right <= title.left || title.right <= box.left)); }"""


def test_compare_progress_stays_off_the_table_title(fresh_app_url):
    with page_at(fresh_app_url, {"width": 1280, "height": 1000}) as page:
        open_tab(page, "Compare")
        page.click("#compare-button")
        page.locator("#compare-cards .progress-level").wait_for()
        overlaps = page.evaluate(PROGRESS)
        shot(page, "compare-progress")
        page.locator("#compare-cards .gen-card").first.wait_for()
    assert overlaps == [False, False]  # the timer and the bar, both clear of the title


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


CELLS = """() => Object.fromEntries(['scale', 'bias'].flatMap(name => ['a', 'b'].map(side => {
    const id = `${name}-heatmap-${side}`, cell = document.getElementById(id), box = cell.getBoundingClientRect();
    const svg = cell.querySelector('.main-svg').getBoundingClientRect();
    return [id, {top: Math.round(box.top), left: box.left, height: box.height, fits: svg.width <= box.width + 1}];
    })))"""


def test_two_inspected_runs_show_the_same_quantity_side_by_side(fresh_app_url):
    with page_at(fresh_app_url, {"width": 1280, "height": 1000}) as page:
        open_tab(page, "Inspect")  # the gallery's pirate RED run shows at once, alone
        page.locator("#scale-heatmap-a .js-plotly-plot .main-svg").first.wait_for()
        page.locator("#inspect-run-b input").click()
        page.locator("ul[role=listbox] li").filter(has_text="bias only").first.click()  # a run that learns no scale
        page.click("#inspect-button")
        page.locator("#inspect-summary").get_by_text("bias only").first.wait_for()
        page.locator("#bias-heatmap-b .js-plotly-plot .main-svg").first.wait_for()
        page.wait_for_timeout(1500)  # the plots' relayout after B's cells appeared
        cells = page.evaluate(CELLS)
        shot(page, "inspect-two-runs")
    for quantity in ("scale", "bias"):
        a, b = cells[f"{quantity}-heatmap-a"], cells[f"{quantity}-heatmap-b"]
        assert a["top"] == b["top"] and a["left"] < b["left"] and a["height"] == b["height"], (quantity, a, b)
        assert a["fits"] and b["fits"], (quantity, a, b)  # each plot as wide as its cell, none cut off
    assert cells["scale-heatmap-a"]["top"] < cells["bias-heatmap-a"]["top"]
