"""Train tab's methods: every registry method as a choice, its learning rate and the MethodSpecs of a job."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from red_explorer.core.registry import DEFAULT_LEARNING_RATES, REGISTRY, MethodSpec
from red_explorer.explore.layers import parse_layers

WITH_SETTINGS = ("red", "lora", "tare")  # methods with settings widgets of their own (learning rate among them)
ORDER = (
    *WITH_SETTINGS,
    *(name for name, method in REGISTRY.items() if name not in WITH_SETTINGS and not method.saves_whole_model),
    *(name for name, method in REGISTRY.items() if name not in WITH_SETTINGS and method.saves_whole_model),
)
OTHER_METHODS = tuple(name for name in ORDER if name not in WITH_SETTINGS)  # their learning rates form one table
METHOD_CHOICES = tuple(REGISTRY[name].title for name in ORDER)
RATE_COLUMNS = ["method", "learning rate"]
WHOLE_MODEL_NOTE = "keeps a whole model on disk per run"
_NAMES = {REGISTRY[name].title.lower(): name for name in ORDER} | {name: name for name in ORDER}


def method_choices() -> list[tuple[str, str]]:
    """(shown name, value) of every registered method; the value is its title ("RED", "LoRA", "full fine-tuning")."""
    choices = []
    for name in ORDER:
        method = REGISTRY[name]
        note = f" ({WHOLE_MODEL_NOTE})" if method.saves_whole_model else ""
        choices.append((method.title + note, method.title))
    return choices


def method_name(choice: str) -> str:
    """A ticked method (its title or registry name, any case) → its registry name; ValueError lists them."""
    name = _NAMES.get(str(choice).strip().lower())
    if name is None:
        raise ValueError(f"unknown method {choice!r}: tick one of {', '.join(METHOD_CHOICES)}")
    return name


def default_rate_table() -> pd.DataFrame:
    """The learning-rate table of the methods without settings widgets, each at its registry default."""
    rows = [[REGISTRY[name].title, DEFAULT_LEARNING_RATES[name]] for name in OTHER_METHODS]
    return pd.DataFrame(rows, columns=RATE_COLUMNS)


def _rate_rows(table) -> list:
    """The (method, learning rate) pairs of a rate table given as a DataFrame, a {headers, data} dict, a mapping
    of method → rate or a list of rows."""
    if table is None:
        return []
    if isinstance(table, pd.DataFrame):
        return table.iloc[:, :2].values.tolist()
    if isinstance(table, Mapping) and "data" in table:
        return [row[:2] for row in table["data"]]
    if isinstance(table, Mapping):
        return list(table.items())
    return [row[:2] for row in table]


def rate(value, title: str) -> float:
    """A learning rate from a number box or a table cell: a positive finite number, else a ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"the learning rate of {title} must be a positive number such as 1e-4, got {value!r}")
    return number


def learning_rates(red_lr, lora_lr, tare_lr, other_rates=None) -> dict[str, float]:
    """Every method's learning rate by registry name: RED, LoRA, TARE from their boxes, the others from the
    table (a method missing from it, or a cell left empty, takes its registry default)."""
    rates = dict(DEFAULT_LEARNING_RATES)
    for name, value in (("red", red_lr), ("lora", lora_lr), ("tare", tare_lr)):
        if value not in (None, ""):
            rates[name] = rate(value, REGISTRY[name].title)
    for method, value in _rate_rows(other_rates):
        name = method_name(method)
        if value not in (None, "") and not (isinstance(value, float) and math.isnan(value)):
            rates[name] = rate(value, REGISTRY[name].title)
    return rates


def build_specs(
    methods, red_variant, red_sites, lora_rank, tare_editors, tare_top_k, layers: list[int] | None = None
) -> list[MethodSpec]:
    """The MethodSpecs of the ticked methods, in the order RED, LoRA, TARE, then the others as listed.

    RED and TARE take the variant, sites, layers (None: all), editors and k of their settings, LoRA its
    rank (α = 2r); every other method trains with its registry defaults.
    """
    chosen = {method_name(method) for method in methods or []}
    if not chosen:
        raise ValueError(f"tick at least one method to train: {', '.join(METHOD_CHOICES)}")
    sites = list(red_sites or [])
    if ("red" in chosen or "tare" in chosen) and not sites:
        raise ValueError("tick at least one site for RED/TARE: FFN and/or attention")
    rank = int(lora_rank or 8)
    options = {
        "red": dict(variant=red_variant or "full", sites=sites, layers=layers),
        "lora": dict(rank=rank, alpha=2 * rank),
        "tare": dict(sites=sites, layers=layers, num_editors=int(tare_editors), top_k=int(tare_top_k)),
    }
    return [MethodSpec(name, **options.get(name, {})) for name in ORDER if name in chosen]


def chosen_layers(text: str | None, num_layers: int) -> list[int] | None:
    """The layers RED/TARE edit, from the Layers box ("1-29", "last:8", "0,2,5-9"); None (all) when it is empty."""
    if text is None or not str(text).strip():
        return None
    return parse_layers(str(text), num_layers)
