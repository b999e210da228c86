"""The recipe comparison and budget curves as markdown: mean ± std over seeds, and who beats the baseline."""

from __future__ import annotations

import math

from red_explorer.choice.recipe import Summary


def _cell(summary: Summary | None, baseline: Summary | None) -> str:
    if summary is None:
        return "—"
    spread = "" if math.isnan(summary.std) else f" ± {summary.std:.3f}"
    text = f"{summary.mean:.3f}{spread} ({len(summary.values)})"
    if baseline is not None and summary is not baseline:
        if summary.beats(baseline):
            text = f"**{text}** better"
        elif baseline.beats(summary):
            text += " worse"
    if summary.forgetting:
        text += f", forgets {sum(summary.forgetting) / len(summary.forgetting):+.2f}"
    return text


def comparison_table(summaries: list[Summary], baseline: str, steps: dict[str, int], names: list[str]) -> str:
    """Candidates (rows) × tasks (columns) at each task's base budget; better/worse: beyond seed noise."""
    tasks = list(steps)
    found = {(s.task, s.candidate): s for s in summaries if s.steps == steps[s.task]}
    header = "| candidate | " + " | ".join(f"{task} ({steps[task]} steps)" for task in tasks) + " | parameters |"
    lines = [header, "|---|" + "---:|" * (len(tasks) + 1)]
    for name in names:
        if not any((task, name) in found for task in tasks):
            continue
        cells = [_cell(found.get((task, name)), found.get((task, baseline))) for task in tasks]
        counts = " / ".join(f"{found[task, name].parameters:,}" if (task, name) in found else "—" for task in tasks)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {counts} |")
    return "\n".join(lines)


def budget_table(summaries: list[Summary], names: list[str]) -> str:
    """Each candidate's metric (mean ± std) against the budget in steps, one row per task × candidate × budget."""
    lines = [
        "| task | candidate | steps | metric | mean ± std (seeds) | method parameters | training time (mean) |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    shown = [summary for summary in summaries if summary.candidate in names]
    for summary in sorted(shown, key=lambda s: (s.task, names.index(s.candidate), s.steps)):
        lines.append(
            f"| {summary.task} | {summary.candidate} | {summary.steps} | {summary.metric} | "
            f"{_cell(summary, None)} | {summary.parameters:,} | {sum(summary.seconds) / len(summary.seconds):.0f} s |"
        )
    return "\n".join(lines)
