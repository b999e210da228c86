"""Explore tab: one run at a strength α, its dose-response, token drift, which layers matter, arithmetic, GGUF."""

from __future__ import annotations

from html import escape

from red_explorer.app.explore_plots import dose_response_figure, layer_importance_figure, token_strip_html
from red_explorer.app.exploring import OPERATIONS, STRENGTH_METHODS, Explorer
from red_explorer.app.ui.handlers.common import Choices, pick_run, run_choices
from red_explorer.app.ui.session import Session
from red_explorer.explore.control_vector import NeedsBiasOnly


def choices(session: Session, current: str | None = None, first: str | None = None, second: str | None = None):
    """Dropdown choices: the run to explore (RED/TARE/LoRA), and the two RED runs of the arithmetic."""
    workbench = session.workbench
    red = run_choices(workbench, ("red",), first)
    second_choice = run_choices(workbench, ("red",), second)
    return run_choices(workbench, STRENGTH_METHODS, current), red, second_choice


def _card(title: str, text: str, css: str) -> str:
    return (
        f'<div class="gen-card {css}"><div class="gen-head"><b>{escape(title)}</b></div>'
        f'<div class="gen-text">{escape(text) or "<i>(empty)</i>"}</div></div>'
    )


def generate(session: Session, label: str | None, strength: float, prompt: str, max_new_tokens: int = 48):
    """(base card HTML, run-at-α card HTML, the run's generated text): the two generations side by side."""
    workbench = session.workbench
    label = pick_run(workbench, label, STRENGTH_METHODS)
    result = Explorer(workbench).generate_at(label, float(strength), prompt, int(max_new_tokens))
    css = workbench.run(label).spec.method
    return (
        _card("base", result.base.text, "base"),
        _card(result.edited.method, result.edited.text, css),
        result.edited.text,
    )


def regenerate(session: Session, label: str | None, strength: float, prompt: str, max_new_tokens: int = 48):
    """The run's card and text only (the base does not change with α): called when the slider is released."""
    workbench = session.workbench
    label = pick_run(workbench, label, STRENGTH_METHODS)
    result = Explorer(workbench).generate_at(label, float(strength), prompt, int(max_new_tokens), with_base=False)
    return _card(result.edited.method, result.edited.text, workbench.run(label).spec.method), result.edited.text


def dose(session: Session, label: str | None, max_length: int):
    """The dose-response figure: validation loss and mean KL from the base over α ∈ {−1, −0.5, 0, …, 3}."""
    workbench = session.workbench
    label = pick_run(workbench, label, STRENGTH_METHODS)
    points = Explorer(workbench).dose_response(label, int(max_length))
    return dose_response_figure(points, f"{label}: validation loss and KL from the base against α")


def drift(session: Session, label: str | None, prompt: str, text: str, max_new_tokens: int = 48):
    """(token strip, the text it read): ``prompt`` + ``text``, one span per token coloured by KL(run ‖ base).

    With no text (nothing generated yet, or the box cleared) the run generates it first (greedy, α = 1), so
    the strip always holds the run's own continuation after the prompt, and the text box shows it.
    """
    workbench = session.workbench
    label = pick_run(workbench, label, STRENGTH_METHODS)
    explorer = Explorer(workbench)
    if not (text or "").strip() and (prompt or "").strip():
        text = explorer.generate_at(label, 1.0, prompt, int(max_new_tokens), with_base=False).edited.text
    return token_strip_html(explorer.drift(label, text, prompt)), text


def layers(session: Session, label: str | None, max_length: int):
    """Per layer of a RED run: validation loss without that layer's edit and with only it, beside base and run."""
    workbench = session.workbench
    label = pick_run(workbench, label, ("red",))
    importance = Explorer(workbench).layers(label, int(max_length))
    return layer_importance_figure(importance, f"{label}: which layers matter")


def combine(
    session: Session,
    operation: str,
    first: str | None,
    second: str | None,
    weight_first: float = 1.0,
    weight_second: float = 1.0,
    name: str = "",
):
    """A new RED run from two kept ones (or one, for negate): (status, the explored run's new choices)."""
    if operation not in OPERATIONS:
        raise ValueError(f"choose an operation: {', '.join(OPERATIONS)}")
    workbench = session.workbench
    first = pick_run(workbench, first, ("red",))
    run = Explorer(workbench).combine(operation, first, second, (float(weight_first), float(weight_second)), name)
    status = f"Kept **{run.label}** ({operation}): pick it in any tab."
    return status, Choices(workbench.run_labels(STRENGTH_METHODS), run.label)


def control_vector(session: Session, label: str | None) -> str:
    """The path of a control-vector GGUF of a bias-only RED run on layers 1 and up (for a download button)."""
    workbench = session.workbench
    label = pick_run(workbench, label, ("red",))
    try:
        return str(Explorer(workbench).control_vector(label).path)
    except NeedsBiasOnly as error:
        raise ValueError(f"{error} (the Export tab's “bias only, layers ≥ 1”)") from error
