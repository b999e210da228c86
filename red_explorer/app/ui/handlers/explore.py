"""Explore tab: one run at a strength α, its dose-response, token drift, which layers matter, arithmetic, GGUF."""

from __future__ import annotations

from dataclasses import replace
from html import escape

import plotly.graph_objects as go

from red_explorer.app.explore_plots import dose_response_figure, layer_importance_figure, token_strip_html
from red_explorer.app.exploring import BATCH_SIZE, MAX_BATCHES, OPERATIONS, STRENGTH_METHODS, Explorer
from red_explorer.app.last_shown import keep_shown
from red_explorer.app.options import APP_DECODING, decoding_text
from red_explorer.app.ui.handlers.common import Notice, colours, pick_run, run_choices
from red_explorer.app.ui.handlers.counting import ShownProgress
from red_explorer.app.ui.handlers.export import BIAS_ONLY, bias_only_advice
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.explore.control_vector import NeedsBiasOnly
from red_explorer.runs.record import file_sha256

TAB = "explore"  # the name its last results are kept under (``last_shown``; ``explore_kept`` gives them back)


def _keep(session: Session, **shown) -> None:
    """Keep what the tab shows now (texts; figures as JSON) with the owner's runs: a reload shows it again."""
    workbench = session.workbench
    values = {name: value.to_json() if isinstance(value, go.Figure) else value for name, value in shown.items()}
    keep_shown(workbench.store.root, workbench.owner, TAB, values)


def choices(session: Session, current: str | None = None, first: str | None = None, second: str | None = None):
    """Dropdown choices: the run to explore (RED/TARE/LoRA; unless one is chosen, the latest RED run, which every
    measure takes), and the two RED runs of the arithmetic: unless chosen, run A the latest RED run and run B the
    most recent other one that combines with it (``Explorer.partner``; none when there is none)."""
    workbench = session.workbench
    red = run_choices(workbench, ("red",), first)
    second_choice = run_choices(workbench, ("red",), second)
    if second_choice.value != second:  # none chosen (or no longer listed): not run A again
        second_choice = replace(second_choice, value=Explorer(workbench).partner(red.value))
    return run_choices(workbench, STRENGTH_METHODS, current, prefer=("red",)), red, second_choice


def _card(title: str, text: str, css: str, colour: str | None = None, max_new_tokens: int = 48) -> str:
    """A generation card: its title, the decoding (the app's one, ``APP_DECODING``), the text; a run's colour."""
    style = f' style="border-top-color: {colour}"' if colour else ""
    decoding = decoding_text(replace(APP_DECODING, max_new_tokens=int(max_new_tokens)))
    return (
        f'<div class="gen-card {css}"{style}><div class="gen-head"><b>{plain(title)}</b>'
        f'<span class="pill">{escape(decoding)}</span></div>'
        f'<div class="gen-text">{escape(text) or "<i>(empty)</i>"}</div></div>'
    )


def _run_card(workbench: Workbench, label: str, result, max_new_tokens: int) -> str:
    colour = colours(workbench).get(label)
    return _card(result.edited.method, result.edited.text, workbench.run(label).spec.method, colour, max_new_tokens)


def generate(session: Session, label: str | None, strength: float, prompt: str, max_new_tokens: int = 48):
    """(base card HTML, run-at-α card HTML, the run's generated text): the two generations side by side."""
    workbench = session.workbench
    label = pick_run(workbench, label, STRENGTH_METHODS)
    result = Explorer(workbench).generate_at(label, float(strength), prompt, int(max_new_tokens))
    base_card = _card("base", result.base.text, "base", max_new_tokens=max_new_tokens)
    run_card = _run_card(workbench, label, result, max_new_tokens)
    _keep(session, base_card=base_card, run_card=run_card, generated=result.edited.text)
    return base_card, run_card, result.edited.text


def regenerate(session: Session, label: str | None, strength: float, prompt: str, max_new_tokens: int = 48):
    """The run's card and text only (the base does not change with α): called whenever α changes."""
    workbench = session.workbench
    label = pick_run(workbench, label, STRENGTH_METHODS)
    result = Explorer(workbench).generate_at(label, float(strength), prompt, int(max_new_tokens), with_base=False)
    run_card = _run_card(workbench, label, result, max_new_tokens)
    _keep(session, run_card=run_card, generated=result.edited.text)
    return run_card, result.edited.text


def data_used(workbench: Workbench, label: str) -> tuple[str, str]:
    """(which data a measure reads, in words; a warning when the run was trained on other data, else '')."""
    data = workbench.data
    if data is None:
        return "", ""
    rows = min(data.detected.num_validation, MAX_BATCHES * BATCH_SIZE)
    words = f"{rows} validation rows of {data.name}"
    trained_on = workbench.run(label).record.data or {}
    if trained_on.get("sha256") and trained_on["sha256"] != file_sha256(data.path):
        return words, (
            f"{label} was trained on {trained_on.get('name', 'other data')}, but the data loaded now is {data.name}: "
            f"this measures the run on {data.name}. Load {trained_on.get('name', 'its data')} in the Data tab to "
            "measure it on the data it learned."
        )
    return words, ""


def _with_data(figure, warning: str):
    return Notice(figure, warning) if warning else figure


def dose(session: Session, label: str | None, max_length: int, progress=None):
    """The dose-response figure: validation loss and mean KL from the base over α ∈ {−1, −0.5, 0, …, 3}; each
    forward pass is told to ``progress``."""
    workbench = session.workbench
    label = pick_run(workbench, label, STRENGTH_METHODS)
    points = Explorer(workbench).dose_response(label, int(max_length), on_progress=ShownProgress(progress))
    words, warning = data_used(workbench, label)
    figure = dose_response_figure(
        points, f"{label} on {words}: loss and KL from the base", colours(workbench).get(label)
    )
    _keep(session, dose_plot=figure)
    return _with_data(figure, warning)


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
    strip = token_strip_html(explorer.drift(label, text, prompt))
    _keep(session, strip=strip, generated=text)
    return strip, text


def layers(session: Session, label: str | None, max_length: int, progress=None):
    """Per layer of a RED run: validation loss without that layer's edit and with only it, beside base and run;
    each evaluation is told to ``progress``."""
    workbench = session.workbench
    label = pick_run(workbench, label, ("red",))
    importance = Explorer(workbench).layers(label, int(max_length), ShownProgress(progress))
    words, warning = data_used(workbench, label)
    figure = layer_importance_figure(importance, f"{label} on {words}: which layers matter", colours(workbench)[label])
    _keep(session, layers_plot=figure)
    return _with_data(figure, warning)


def combine(
    session: Session,
    operation: str,
    first: str | None,
    second: str | None,
    weight_first: float = 1.0,
    weight_second: float = 1.0,
    name: str = "",
):
    """A new RED run from two kept ones (or one, for negate): (status, the explored run's choices with the new run
    chosen, run A's and run B's choices, both listing it), every list with its group names."""
    if operation not in OPERATIONS:
        raise ValueError(f"choose an operation: {', '.join(OPERATIONS)}")
    workbench = session.workbench
    first = pick_run(workbench, first, ("red",))
    run = Explorer(workbench).combine(operation, first, second, (float(weight_first), float(weight_second)), name)
    status = f"Kept **{plain(run.label)}** ({operation}): pick it in any tab."
    _keep(session, status=status)
    return status, *choices(session, run.label, first, second)


def control_vector(session: Session, label: str | None) -> str:
    """The path of a control-vector GGUF of a bias-only RED run on layers 1 and up (for a download button)."""
    workbench = session.workbench
    label = pick_run(workbench, label, ("red",))
    try:
        return str(Explorer(workbench).control_vector(label).path)
    except NeedsBiasOnly as error:
        raise ValueError(bias_only_advice(error, f"in the Export tab, tick “{BIAS_ONLY}”")) from error
