"""Write assets/explore_strength.png and assets/explore_drift.png: the Explore tab after the "Data to text" demo.

Usage: python scripts/make_explore_screenshots.py   (needs /usr/bin/chromium; the default model, a few minutes on a CPU)
Full-page shots of each stage go to artifacts/explore/ (git-ignored).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from app_helpers import free_port  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from red_explorer.app.demo_presets import PRESETS  # noqa: E402
from red_explorer.app.ui import build_demo  # noqa: E402
from red_explorer.app.ui.interface import launch_options  # noqa: E402

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]
ASSETS, STAGES = ROOT / "assets", ROOT / "artifacts" / "explore"
SLOW = 1_200_000  # ms: training and the dose-response on a shared CPU


def stage(page, name: str) -> None:
    page.wait_for_timeout(800)  # plotly transitions
    page.screenshot(path=str(STAGES / f"{name}.png"), full_page=True)


def demo_then_explore(page) -> None:
    """One click on the "Data to text" demo, then the Explore tab: generate, dose-response, token drift."""
    page.get_by_role("tab", name="Model", exact=True).click()
    expect(page.locator("#model-status")).to_contain_text("ready")
    page.click("#demo-data-to-text")
    expect(page.locator("#compare-cards .gen-card")).to_have_count(2)
    stage(page, "1_compare_after_demo")
    page.get_by_role("tab", name="Explore", exact=True).click()
    page.locator("#explore-prompt textarea").fill(PRESETS["data-to-text"].prompt)
    page.click("#explore-generate")
    expect(page.locator("#explore-run")).to_contain_text("α = 1")
    page.click("#explore-dose")
    expect(page.locator("#dose-plot")).to_contain_text("mean KL from base")
    stage(page, "2_dose")
    page.locator("#dose-plot").screenshot(path=str(ASSETS / "explore_strength.png"))
    page.click("#explore-drift")
    expect(page.locator("#drift-strip")).to_contain_text("tokens of the text")
    stage(page, "3_drift")
    page.locator("#drift-strip").screenshot(path=str(ASSETS / "explore_drift.png"))


def main() -> None:
    STAGES.mkdir(parents=True, exist_ok=True)
    demo = build_demo(preload=True)
    demo.queue(default_concurrency_limit=4).launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options()
    )
    expect.set_options(timeout=SLOW)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(demo.local_url)
            demo_then_explore(page)
            browser.close()
    finally:
        demo.close()
    print(f"wrote {ASSETS / 'explore_strength.png'} and {ASSETS / 'explore_drift.png'}")


if __name__ == "__main__":
    main()
