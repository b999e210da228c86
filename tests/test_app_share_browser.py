"""A run shared by link, in two browsers of their own (headless Chromium): the teacher's and a student's.

Screenshots go to artifacts/screenshots/ (git-ignored). Needs /usr/bin/chromium (bash scripts/setup.sh --test).
"""

import re

import pytest
from app_process import tiny_edits_zip
from browser_helpers import ARGS, SHOTS, open_tab, pytest_chromium_or_skip, shot

pytestmark = pytest.mark.browser
SHARED = "(shared)"


def load_model(page, model) -> None:
    from playwright.sync_api import expect

    open_tab(page, "Model")
    page.locator("#model-spec input").fill(str(model))
    page.click("#load-model")
    expect(page.locator("#model-status")).to_contain_text("ready", timeout=120_000)


def test_a_student_opens_the_teachers_link_read_only_until_it_is_revoked(fresh_app_url, tmp_path):
    executable = pytest_chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    model, archive = tiny_edits_zip(tmp_path)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        teacher = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        teacher.goto(fresh_app_url)
        load_model(teacher, model)
        open_tab(teacher, "Export")
        teacher.locator("#import-file input[type=file]").set_input_files(str(archive))
        expect(teacher.locator("#import-status")).to_contain_text("Loaded RED full (ffn)", timeout=120_000)
        teacher.click("#run-share")
        link_box = teacher.locator("#share-link textarea")
        expect(link_box).to_have_value(link_pattern(fresh_app_url), timeout=30_000)
        link = link_box.input_value()
        expect(teacher.locator("#share-links")).to_contain_text(link)
        shot(teacher, "share_1_teacher_link")

        student = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()  # another browser
        student.goto(link)
        expect(student.locator("#shared-note")).to_contain_text("was shared with you")
        load_model(student, model)
        open_tab(student, "Export")
        overview = student.locator("#runs-overview")
        expect(overview).to_contain_text(f"RED full (ffn) (imported) {SHARED}")
        expect(overview).to_contain_text("shared with you, read-only")
        expect(student.locator("#export-run input")).to_have_value(f"RED full (ffn) (imported) {SHARED}")
        student.click("#run-delete")
        expect(student.locator(".toast-body").filter(has_text="shared with you read-only").first).to_be_visible()
        expect(overview).to_contain_text(SHARED)  # still listed: nothing was deleted
        for box in ("#runs-overview", "#export-run"):  # the toast says it; the run list is not painted "Error"
            expect(student.locator(f"{box} .error")).to_have_count(0)
        shot(student, "share_2_student_read_only")

        teacher.locator("#share-revoke-choice input").click()
        teacher.get_by_role("option").first.click()
        teacher.click("#share-revoke")
        expect(teacher.locator("#share-links")).to_contain_text("No share links")
        student.reload()
        expect(student.locator("#shared-note")).to_contain_text("revoked by its owner or never existed")
        open_tab(student, "Export")
        expect(student.locator("#runs-overview")).to_contain_text("Disk:")
        expect(student.locator("#runs-overview")).not_to_contain_text(SHARED)
        shot(student, "share_3_student_after_revoke")
        the_owner_deletes_the_run_after_saying_yes(teacher)
        browser.close()


def the_owner_deletes_the_run_after_saying_yes(page) -> None:
    """Delete run asks first, naming the run; only the second button deletes, and the page says what it freed."""
    from playwright.sync_api import expect

    overview, confirm = page.locator("#runs-overview"), page.locator("#run-delete-confirm")
    page.click("#run-delete")
    expect(confirm).to_be_visible()
    expect(page.locator("#run-delete-sure")).to_have_text(
        re.compile(r"Yes, delete 'RED full \(ffn\) \(imported\)' \(\d[\d.,]* (bytes|kB)\) for good")
    )
    shot(page, "share_4_delete_asked")
    expect(overview).not_to_contain_text("Deleted run")  # asking deleted nothing
    page.click("#run-delete-cancel")
    expect(confirm).to_be_hidden()
    page.click("#run-delete")
    page.click("#run-delete-sure")
    expect(overview).to_contain_text(
        re.compile(r"✓ Deleted run RED full \(ffn\) \(imported\) \(\d[\d.,]* (bytes|kB) freed\)\.")
    )
    expect(confirm).to_be_hidden()
    shot(page, "share_5_deleted")


def link_pattern(fresh_app_url: str) -> re.Pattern:
    """The link: the app's address, then ?run= and a 43-character token."""
    return re.compile(re.escape(fresh_app_url.rstrip("/")) + r"/\?run=[A-Za-z0-9_-]{43}$")
