"""Write assets/screenshot.png: the Train tab after RED and LoRA trained on the pirate sample (default model).

Usage: python scripts/make_screenshot.py [--steps 12]   (needs /usr/bin/chromium; a few minutes on a CPU)
"""

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from app_helpers import free_port  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from red_explorer.app.ui import build_demo  # noqa: E402
from red_explorer.app.ui.interface import launch_options  # noqa: E402

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]


def fill(page, element_id: str, value) -> None:
    box = page.locator(f"#{element_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def main(steps: int, target: Path) -> None:
    demo = build_demo(preload=True)
    demo.queue().launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options()
    )
    expect.set_options(timeout=900_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(demo.local_url)
        page.get_by_role("tab", name="Data", exact=True).click()
        page.locator("#data-sample input").click()
        page.get_by_role("option", name="Pirate speak", exact=False).click()
        page.click("#load-sample")
        expect(page.locator("#data-summary")).to_contain_text("180 train")
        fill(page, "max-length", 80)  # the Data tab's slider: one max length for Data, Train and Ablations
        page.get_by_role("tab", name="Train", exact=True).click()
        page.get_by_label("LoRA", exact=True).check()
        for element_id, value in (("max-steps", steps), ("eval-every", max(1, steps // 3))):
            fill(page, element_id, value)
        page.click("#train-button")
        expect(page.locator("#train-status")).to_contain_text("Done.")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(target), full_page=True)
        browser.close()
    demo.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshot.png")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.out)
