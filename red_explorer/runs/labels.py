"""Automatic run labels that tell runs apart by what differs between them (pure functions)."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from red_explorer.core.layer_ranges import layer_ranges

SEPARATOR = " · "
COUNTER = re.compile(r" #(\d+)$")


@dataclass(frozen=True)
class LabelFacts:
    """What a label may mention: the method's label (``MethodSpec.label``), its options, rate and steps."""

    method_label: str  # "RED full (ffn)"
    options: dict = field(default_factory=dict)  # MethodSpec.to_dict()
    learning_rate: float | None = None
    steps: int | None = None

    @classmethod
    def of(cls, spec, learning_rate: float | None = None, steps: int | None = None) -> LabelFacts:
        """The facts of a ``MethodSpec`` trained at ``learning_rate`` for ``steps`` steps."""
        return cls(spec.label, spec.to_dict(), learning_rate, steps)


def short_number(value: float) -> str:
    """A learning rate as people write it: 0.01 -> '1e-2', 0.0025 -> '2.5e-3', 0.5 -> '0.5'."""
    if value == 0 or 0.1 <= abs(value) < 1000:
        return f"{value:g}"
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _option_text(name: str, value) -> str:
    if name == "layers":
        return layer_ranges(value)
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    return f"{name} {value}"


def _differing(group: Sequence[LabelFacts]) -> list[str]:
    """The facts that take more than one value in ``group``, in a fixed order: lr, steps, then options."""
    names = []
    if len({facts.learning_rate for facts in group}) > 1:
        names.append("learning_rate")
    if len({facts.steps for facts in group}) > 1:
        names.append("steps")
    keys = sorted({key for facts in group for key in facts.options} - {"method"})
    names += [key for key in keys if len({repr(facts.options.get(key)) for facts in group}) > 1]
    return names


def _describe(facts: LabelFacts, differing: list[str]) -> str:
    parts = [facts.method_label]
    for name in differing:
        if name == "learning_rate":
            parts.append("lr ?" if facts.learning_rate is None else f"lr {short_number(facts.learning_rate)}")
        elif name == "steps":
            parts.append("? steps" if facts.steps is None else f"{facts.steps} steps")
        else:
            parts.append(_option_text(name, facts.options.get(name)))
    return SEPARATOR.join(parts)


def auto_labels(runs: Sequence[LabelFacts]) -> list[str]:
    """One distinct label per run, in order.

    A label is the method label; among runs with the same method label it adds what differs between
    them (learning rate, steps, then any option such as layers), and a counter (" #2", " #3") on
    runs that equal an earlier one in everything: "RED full (ffn) · lr 1e-2 · 30 steps #2".
    """
    groups: dict[str, list[LabelFacts]] = {}
    for facts in runs:
        groups.setdefault(facts.method_label, []).append(facts)
    differing = {label: _differing(group) for label, group in groups.items()}
    labels: list[str] = []
    for facts in runs:
        labels.append(unique_label(_describe(facts, differing[facts.method_label]), labels))
    return labels


def unique_label(candidate: str, taken: Collection[str]) -> str:
    """``candidate``, or with the lowest counter " #2", " #3"... that makes it differ from ``taken``."""
    if candidate not in taken:
        return candidate
    stem = COUNTER.sub("", candidate)
    counter = 2
    while f"{stem} #{counter}" in taken:
        counter += 1
    return f"{stem} #{counter}"


def label_for_new_run(new: LabelFacts, existing: Sequence[LabelFacts], taken: Collection[str]) -> str:
    """The label of a run joining ``existing`` runs whose labels are ``taken`` (never one of them)."""
    return unique_label(auto_labels([*existing, new])[-1], taken)
