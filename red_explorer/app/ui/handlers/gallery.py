"""Gallery runs in Compare: their recorded showcase answers at once ("prepared"), and the same prompt live."""

from __future__ import annotations

from dataclasses import asdict
from html import escape

from red_explorer.app.options import APP_DECODING
from red_explorer.app.ui.handlers.compare import compare
from red_explorer.app.ui.session import Session
from red_explorer.runs.gallery import GalleryEntry, gallery_entry

NO_GALLERY = ""  # no gallery run for this model: the prepared view stays empty


def _ticked_gallery(session: Session, runs: list[str] | None) -> list[tuple[str, GalleryEntry]]:
    listed = session.workbench.runs
    chosen = [listed[label] for label in runs or [] if label in listed and listed[label].gallery]
    return [(run.label, gallery_entry(run.record)) for run in chosen]


def _card(label: str, entry: GalleryEntry) -> str:
    rows = "".join(
        f"<tr><td>{escape(item.prompt)}</td><td class='base'>{escape(item.base)}</td>"
        f"<td class='run'>{escape(item.run)}</td></tr>"
        for item in entry.showcase
    )
    check = entry.check
    metric = f"validation {check['metric']} {check['value']:.4g} (recorded)"
    how = f"recorded with {escape(entry.decoding)}" if entry.decoding else "recorded labels"
    return (
        f"<div class='gallery-card'><b>{escape(label)}</b> · read-only gallery run · {metric}<br>"
        f"<small>{escape(entry.about)} Answers {how}; “Generate live” runs the first prompt now.</small>"
        f"<table style='width: 100%'><tr><th>prompt</th><th>base model</th><th>{escape(label)}</th></tr>"
        f"{rows}</table></div>"
    )


def prepared(session: Session, runs: list[str] | None) -> str:
    """HTML: each ticked gallery run's showcase prompts with the base's and its recorded answers (nothing computed);
    when none is ticked, the gallery runs there are to pick."""
    ticked = _ticked_gallery(session, runs)
    if ticked:
        return "".join(_card(label, entry) for label, entry in ticked)
    available = [label for label, run in session.workbench.runs.items() if run.gallery]
    if not available:
        return NO_GALLERY
    names = ", ".join(f"<b>{escape(label)}</b>" for label in available)
    return (
        "<div class='gallery-card'>Ready-made gallery runs for this model (read-only, no training needed): "
        f"{names}. Tick one in “Runs next to the base model” to see its recorded answers at once.</div>"
    )


def live_settings(session: Session, runs: list[str] | None) -> tuple:
    """What "Generate live" fills in: the first ticked gallery run's first showcase prompt, no validation example,
    and the decoding its answers were recorded with (greedy, as gallery.json states it)."""
    ticked = [(label, entry) for label, entry in _ticked_gallery(session, runs) if entry.showcase and entry.decoding]
    if not ticked:
        raise ValueError("tick a gallery run of this model in “Runs next to the base model” first")
    entry = ticked[0][1]
    decoding = {**asdict(APP_DECODING), **entry.decoding_settings}
    return entry.showcase[0].prompt, None, decoding["max_new_tokens"], False, decoding["repetition_penalty"], 0


def generate_live(
    session: Session,
    prompt: str,
    example: str | None,
    runs: list[str] | None,
    max_new_tokens: float,
    do_sample: bool,
    temperature: float,
    repetition_penalty: float,
    no_repeat_ngram_size: float,
    progress=None,
):
    """ "Generate live" once ``live_settings`` filled in the prompt and decoding: Compare's own generation."""
    decoding = (max_new_tokens, do_sample, temperature, repetition_penalty, no_repeat_ngram_size)
    return compare(session, prompt, example, runs, *decoding, progress=progress)
