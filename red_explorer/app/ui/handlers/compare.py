"""Compare tab: one prompt (or a validation example), the base model and each run side by side, same decoding."""

from __future__ import annotations

from html import escape

import pandas as pd

from red_explorer.app.plots import run_colour
from red_explorer.app.ui.handlers.common import Choices, run_choices
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.session import Session
from red_explorer.engine.batched_compare import BatchedComparison
from red_explorer.engine.generation import DecodingSettings, Generation

EXAMPLE_LIMIT = 50
METHOD_CLASS = {"base": "base", "RED": "red", "LoRA": "lora", "TARE": "tare"}
TABLE_COLUMNS = ["method", "seconds", "new tokens", "tokens/s", "ROUGE-L", "text"]


def _example_label(index: int, prompt: str) -> str:
    text = " ".join(prompt.split())
    return f"#{index}: {text[:90]}{'…' if len(text) > 90 else ''}"


def choices(session: Session, current_runs: list[str] | None = None):
    """(validation examples, runs to compare): examples labelled '#i: text'; this model's runs, groups together, all
    ticked by default."""
    workbench = session.workbench
    examples = []
    if workbench.data is not None:
        split = workbench.data.probe.raw["validation"]
        columns = split.column_names
        for index in range(min(split.num_rows, EXAMPLE_LIMIT)):
            examples.append(_example_label(index, " | ".join(str(split[index][name]) for name in columns[:1])))
    runs = run_choices(workbench, other_models=False)
    ticked = [label for label in current_runs or [] if label in runs.choices] or runs.choices
    return Choices(examples, None), Choices(runs.choices, ticked, runs.names)


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


def cards_html(generations: list[Generation], colours: dict[str, str] | None = None) -> str:
    """Side-by-side cards: method, latency, tokens/s, the text, and ROUGE-L against the reference.

    ``colours`` gives a run's card its fixed colour (``run_colour`` of its run id).
    """
    cards, colours = [], colours or {}
    for generation in generations:
        colour = colours.get(generation.method)
        style = f" style='border-top-color: {colour}'" if colour else ""
        rouge = "" if generation.rouge_l is None else f"<span class='pill'>ROUGE-L {generation.rouge_l:.3f}</span>"
        cards.append(
            f"<div class='gen-card {_css_class(generation.method)}'{style}>"
            f"<div class='gen-head'><b>{plain(generation.method)}</b>"
            f"<span class='pill'>{generation.seconds:.2f} s</span>"
            f"<span class='pill'>{generation.tokens_per_second:.1f} tok/s</span>{rouge}</div>"
            f"<div class='gen-text'>{escape(generation.text) or '<i>(empty)</i>'}</div></div>"
        )
    return f"<div class='gen-grid'>{''.join(cards)}</div>"


def timing_note(device: str, batched: BatchedComparison | None = None) -> str:
    """What the latency figures measure: each generate call, whose rows it held, and what was timed."""
    if batched is None:
        return f"*Latency:* wall-clock seconds of generation on {device}, timed after an untimed warm-up."
    lines = [f"*Latency* on {device}: every card shows the seconds of the generate call that produced it."]
    for call in batched.calls:
        kind = "one batched call" if call.batched else "a call of its own"
        lines.append(f"- {', '.join(map(plain, call.labels))}: {kind}, {call.seconds:.2f} s ({call.measured})")
    for label, reason in batched.separate.items():
        lines.append(f"- {plain(label)} ran apart: {reason}")
    return "\n".join(lines)


def compare(
    session: Session,
    prompt: str = "",
    example: str | None = None,
    runs: list[str] | None = None,
    max_new_tokens: float = 48,
    do_sample: bool = False,
    temperature: float = 0.7,
    repetition_penalty: float = 1.1,
    no_repeat_ngram_size: float = 0,
):
    """Generate with base + the ticked runs: (prompt and reference markdown, cards html, table)."""
    settings = DecodingSettings(
        max_new_tokens=int(max_new_tokens),
        do_sample=bool(do_sample),
        temperature=float(temperature),
        repetition_penalty=float(repetition_penalty),
        no_repeat_ngram_size=int(no_repeat_ngram_size or 0),
    )
    index = example_index(example)
    labels = list(runs) if runs else []
    comparison = session.workbench.compare(prompt or "", index, labels, settings)
    formatted, reference, generations = comparison.prompt, comparison.reference, comparison.generations
    shown = f"**Prompt** (as the model sees it):\n```text\n{formatted.strip()}\n```"
    if reference:
        shown += f"\n**Reference:** {reference}"
    shown += "\n\n" + timing_note(session.workbench.key.resolved().device, comparison.batched)
    table = pd.DataFrame(
        [
            {
                "method": generation.method,
                "seconds": round(generation.seconds, 3),
                "new tokens": generation.new_tokens,
                "tokens/s": round(generation.tokens_per_second, 1),
                "ROUGE-L": None if generation.rouge_l is None else round(generation.rouge_l, 4),
                "text": generation.text,
            }
            for generation in generations
        ],
        columns=TABLE_COLUMNS,
    )
    colours = {run.label: run_colour(run.id) for run in session.workbench.runs.values()}
    return shown, cards_html(generations, colours), table
