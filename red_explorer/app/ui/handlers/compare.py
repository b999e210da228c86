"""Compare tab: one prompt (or a validation example), the base model and each run side by side, same decoding."""

from __future__ import annotations

import json
from html import escape

import pandas as pd

from red_explorer.app.colours import BASE_COLOUR
from red_explorer.app.last_shown import keep_shown
from red_explorer.app.options import APP_DECODING, decoding_text
from red_explorer.app.ui.handlers.common import LATEST_SHOWN, ROW_COLOURS, Choices, colours, latest, run_choices
from red_explorer.app.ui.handlers.counting import ShownProgress
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.data.bundled import SAMPLE_FOLDER
from red_explorer.engine.batched_compare import BatchedComparison
from red_explorer.engine.generation import DecodingSettings, Generation

DEFAULT_PROMPT = "name[The Golden Curry] | eatType[restaurant] | food[Indian] | priceRange[cheap] | area[riverside]"
DEFAULT_PROMPT_DATA = SAMPLE_FOLDER / "restaurants_e2e.csv"  # the bundled sample the default prompt is a row of
EXAMPLE_LIMIT = 50
METHOD_CLASS = {"base": "base", "RED": "red", "LoRA": "lora", "TARE": "tare"}
TABLE_COLUMNS = ["method", "seconds", "new tokens", "tokens/s", "ROUGE-L", "text"]
SHARED = "shared"  # a timing cell of a run whose rows were generated in one call with others
NO_REFERENCE = "no reference"  # a ROUGE-L cell when no validation example (with its reference) was picked
TABLE_TITLE = (
    f"Per run: seconds and tokens/s of a call of its own (“{SHARED}”: one batched call with others, timed above); "
    f"ROUGE-L against the reference of a validation example (“{NO_REFERENCE}”: pick one above)"
)
TAB = "compare"  # the name its last result is kept under (``last_shown``)


def _example_label(index: int, prompt: str) -> str:
    text = " ".join(prompt.split())
    return f"#{index}: {text[:90]}{'…' if len(text) > 90 else ''}"


def _examples(workbench: Workbench) -> list[str]:
    """The first ``EXAMPLE_LIMIT`` validation examples of the data loaded, labelled '#i: text'."""
    if workbench.data is None:
        return []
    split = workbench.data.probe.raw["validation"]
    columns = split.column_names
    return [
        _example_label(index, " | ".join(str(split[index][name]) for name in columns[:1]))
        for index in range(min(split.num_rows, EXAMPLE_LIMIT))
    ]


def ticked_runs(workbench: Workbench, current: list[str] | None, listed: list[str] | None) -> list[str]:
    """The runs Compare ticks: with none ``current`` ticked, the latest ``LATEST_SHOWN`` (every run would make
    Generate slow); else the runs trained since the runs were ``listed`` (new ones; a gallery run never is) join
    the ticked ones, the newest ``LATEST_SHOWN`` of them; with nothing new (or ``listed`` None) the ticks stay."""
    here = set(workbench.runs)
    kept = [label for label in current or [] if label in here]
    new = [label for label in workbench.run_labels() if listed is not None and label not in listed]
    if not kept or not new:
        return kept or latest(workbench, LATEST_SHOWN)
    room = LATEST_SHOWN - min(len(new), LATEST_SHOWN)
    kept = [label for label in kept if label not in new]
    return (kept[-room:] if room else []) + new[-LATEST_SHOWN:]


def choices(session: Session, current_runs: list[str] | None = None, listed: list[str] | None = None):
    """(validation examples, runs to compare, the runs now listed): examples labelled '#i: text'; this model's
    runs, groups together, ticked as ``ticked_runs`` says (``listed``: what the last listing held)."""
    workbench = session.workbench
    runs = run_choices(workbench, other_models=False)
    ticked = ticked_runs(workbench, current_runs, listed)
    return Choices(_examples(workbench), None), Choices(runs.choices, ticked, runs.names), list(runs.choices)


def listed_runs(session: Session) -> list[str]:
    """The runs Compare lists now (as the page opens: a run trained after this is new)."""
    return run_choices(session.workbench, other_models=False).choices


def prompt_for_data(session: Session, prompt: str | None) -> str:
    """The prompt box as the tab opens: the restaurants prompt it starts with becomes the first validation row's
    prompt of other data loaded (or nothing, when that row has no prompt text); a prompt typed stays as it is."""
    data = session.workbench.data
    if prompt != DEFAULT_PROMPT or data is None or data.path.resolve() == DEFAULT_PROMPT_DATA.resolve():
        return prompt or ""
    split = data.probe.raw["validation"]
    first = split[0].get(data.detected.columns[0]) if split.num_rows else None
    return first.strip() if isinstance(first, str) else ""


def example_index(example: str | None) -> int | None:
    """'#3: ...' → 3; empty → None."""
    if not example:
        return None
    head = example.split(":", 1)[0].lstrip("#").strip()
    if not head.isdigit():
        raise ValueError(f"cannot read the example {example!r}: pick one from the list")
    return int(head)


def _css_class(method: str) -> str:
    return METHOD_CLASS.get(method.split()[0], "other")


def shared_call(batched: BatchedComparison | None) -> set[str]:
    """The contenders that shared one batched generate call: that call's time is theirs together, not each one's."""
    calls = batched.calls if batched is not None else []
    return {label for call in calls if call.batched and len(call.labels) > 1 for label in call.labels}


def _pills(generation: Generation, batched: set[str]) -> str:
    if generation.method in batched:
        return "<span class='pill'>batched call</span>"
    return (
        f"<span class='pill'>{generation.seconds:.2f} s</span>"
        f"<span class='pill'>{generation.tokens_per_second:.1f} tok/s</span>"
    )


def cards_html(
    generations: list[Generation], colours: dict[str, str] | None = None, batched: set[str] | None = None
) -> str:
    """Side-by-side cards: method, its own latency and tokens/s (only when its call was its own), the text, and
    ROUGE-L against the reference.

    ``colours`` gives a run's card its fixed colour; ``batched`` names the contenders of one shared call (their
    time is reported once, for the call: ``timing_note``).
    """
    cards, colours, batched = [], colours or {}, batched or set()
    for generation in generations:
        colour = colours.get(generation.method)
        style = f" style='border-top-color: {colour}'" if colour else ""
        rouge = "" if generation.rouge_l is None else f"<span class='pill'>ROUGE-L {generation.rouge_l:.3f}</span>"
        cards.append(
            f"<div class='gen-card {_css_class(generation.method)}'{style}>"
            f"<div class='gen-head'><b>{plain(generation.method)}</b>{_pills(generation, batched)}{rouge}</div>"
            f"<div class='gen-text'>{escape(generation.text) or '<i>(empty)</i>'}</div></div>"
        )
    return f"<div class='gen-grid'>{''.join(cards)}</div>"


def timing_note(device: str, batched: BatchedComparison | None = None, settings: DecodingSettings | None = None) -> str:
    """The decoding, then what the latency figures measure: each generate call once, with its rows and speed."""
    decoding = f"*Decoding:* {decoding_text(settings or APP_DECODING)}."
    if batched is None:
        return f"{decoding}\n\n*Latency:* wall-clock seconds of generation on {device}, timed after an untimed warm-up."
    lines = [decoding, "", f"*Latency* on {device}, per generate call (a batched call's time is all its rows'):"]
    for call in batched.calls:
        speed = f"{call.new_tokens / call.seconds:.1f} tok/s" if call.seconds else "not timed"
        kind = f"one batched call of {call.rows} rows" if call.batched and len(call.labels) > 1 else "a call of its own"
        lines.append(
            f"- {', '.join(map(plain, call.labels))}: {kind}, {call.seconds:.2f} s for {call.new_tokens} new tokens "
            f"({speed}; {call.measured})"
        )
    for label, reason in batched.separate.items():
        lines.append(f"- {plain(label)} ran apart: {reason}")
    return "\n".join(lines)


def _table(generations: list[Generation], batched: set[str], colours: dict[str, str]) -> pd.DataFrame:
    """One row per contender; seconds and tokens/s only for a contender timed in a call of its own, else
    ``SHARED``; ROUGE-L only against a reference, else ``NO_REFERENCE``."""
    rows = []
    for generation in generations:
        alone = generation.method not in batched
        rows.append(
            {
                "method": generation.method,
                "seconds": round(generation.seconds, 3) if alone else SHARED,
                "new tokens": generation.new_tokens,
                "tokens/s": round(generation.tokens_per_second, 1) if alone else SHARED,
                "ROUGE-L": NO_REFERENCE if generation.rouge_l is None else round(generation.rouge_l, 4),
                "text": generation.text,
            }
        )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table.attrs[ROW_COLOURS] = [colours.get(generation.method, BASE_COLOUR) for generation in generations]
    return table


def compare(
    session: Session,
    prompt: str = "",
    example: str | None = None,
    runs: list[str] | None = None,
    max_new_tokens: float = APP_DECODING.max_new_tokens,
    do_sample: bool = False,
    temperature: float = 0.7,
    repetition_penalty: float = APP_DECODING.repetition_penalty,
    no_repeat_ngram_size: float = 0,
    progress=None,
):
    """Generate with base + the ticked runs: (prompt and reference markdown, cards html, table); each decoding step
    is told to ``progress``."""
    settings = DecodingSettings(
        max_new_tokens=int(max_new_tokens),
        do_sample=bool(do_sample),
        temperature=float(temperature),
        repetition_penalty=float(repetition_penalty),
        no_repeat_ngram_size=int(no_repeat_ngram_size or 0),
    )
    index = example_index(example)
    labels = list(runs) if runs else []
    comparison = session.workbench.compare(prompt or "", index, labels, settings, ShownProgress(progress))
    formatted, reference, generations = comparison.prompt, comparison.reference, comparison.generations
    shown = f"**Prompt** (as the model sees it):\n```text\n{formatted.strip()}\n```"
    if reference:
        shown += f"\n**Reference:** {reference}"
    shown += "\n\n" + timing_note(session.workbench.key.resolved().device, comparison.batched, settings)
    together, fixed = shared_call(comparison.batched), colours(session.workbench)
    cards, table = cards_html(generations, fixed, together), _table(generations, together, fixed)
    keep_result(session, shown, cards, table)
    return shown, cards, table


def keep_result(session: Session, shown: str, cards: str, table: pd.DataFrame) -> None:
    """Keep what Compare shows now with the owner's runs: a reload shows it again (``compare_kept``)."""
    workbench, rows = session.workbench, json.loads(table.to_json(orient="records"))
    result = {"shown": shown, "cards": cards, "rows": rows, "colours": table.attrs.get(ROW_COLOURS, [])}
    keep_shown(workbench.store.root, workbench.owner, TAB, result)
