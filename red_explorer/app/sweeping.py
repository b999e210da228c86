"""What the app's learning-rate sweep needs around the library's: the choices, the rates a user typed, its files."""

from __future__ import annotations

import math
from pathlib import Path

from red_explorer.app.options import TrainOptions
from red_explorer.choice.card import write_card
from red_explorer.choice.sweep import SweepConfig, SweepResult, write_results
from red_explorer.core.registry import REGISTRY, MethodSpec
from red_explorer.engine.training import TrainConfig
from red_explorer.runs.labels import short_number

METHOD_CHOICES = [(method.title, name) for name, method in REGISTRY.items()]  # (display name, registry key)
DEFAULT_METHODS = ["red", "lora"]
RATES_HELP = "Type 'auto' or comma-separated rates such as 1e-3, 3e-3, 1e-2"
FULL_NOTE = (
    "Full fine-tuning trains every weight: each of its points keeps a whole model on disk "
    "(it counts against your quota)."
)


def parse_rates(text: str | None) -> str | list[float]:
    """'auto' (or nothing) for each method's default × the sweep's factors, else the comma-separated rates."""
    text = (text or "").strip()
    if text.lower() in ("", "auto"):
        return "auto"
    rates = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        try:
            rate = float(item)
        except ValueError:
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"learning rates: {item!r} is not a positive number. {RATES_HELP}")
        rates.append(rate)
    if not rates:
        raise ValueError(f"learning rates: none given. {RATES_HELP}")
    return rates


def method_specs(names: list[str] | None) -> list[MethodSpec]:
    """A spec with the method's usual options per ticked registry name (at least one)."""
    if not names:
        raise ValueError("tick at least one method to sweep")
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise ValueError(f"no method called {', '.join(unknown)}: pick from {', '.join(REGISTRY)}")
    return [MethodSpec(name) for name in dict.fromkeys(names)]


def sweep_config(rates: str | None, options: TrainOptions, forgetting: bool = True) -> SweepConfig:
    """The library's SweepConfig: the rates, and the loop every point shares (no validation passes in between)."""
    train = TrainConfig(**options.loop_options() | {"eval_every": None})
    return SweepConfig(learning_rates=parse_rates(rates), train=train, forgetting=forgetting)


def rates_preview(names: list[str] | None, rates: str | None) -> str:
    """Markdown: the rates each ticked method will try and how many runs that makes (or why it cannot run)."""
    try:
        specs = method_specs(names)
        config = SweepConfig(learning_rates=parse_rates(rates))
    except ValueError as error:
        return f"✕ {error}"
    lines = [
        f"- **{spec.entry.title}**: {', '.join(map(short_number, config.rates_for(spec.entry)))}" for spec in specs
    ]
    total = sum(len(config.rates_for(spec.entry)) for spec in specs)
    source = "each method's usual rate × " + ", ".join(f"{factor:.3g}" for factor in config.factors)
    head = f"**{total} runs**, rates from {source}:" if config.learning_rates == "auto" else f"**{total} runs**:"
    notes = [f"\n{FULL_NOTE}" for spec in specs if spec.entry.saves_whole_model]
    return "\n".join([head, *lines, *notes])


def edge_hints(results: dict) -> list[str]:
    """A hint per method whose best rate is the highest (or lowest) of its grid: the best may lie beyond it."""
    hints = []
    for best in sorted(results["best"], key=lambda record: record["spec_index"]):
        rates = sorted(
            {point["learning_rate"] for point in results["points"] if point["spec_index"] == best["spec_index"]}
        )
        if len(rates) < 2 or rates[0] < best["learning_rate"] < rates[-1]:
            continue
        way = "highest" if best["learning_rate"] == rates[-1] else "lowest"
        further = "higher" if way == "highest" else "lower"
        hints.append(
            f"{best['label']}: the best rate {short_number(best['learning_rate'])} is the {way} tried, so the best may "
            f"lie beyond it: try {further} rates"
        )
    return hints


def write_files(result: SweepResult, folder: Path) -> list[Path]:
    """results.json (every point, the best per method) and results.md (the method card) in ``folder``."""
    results = write_results(result, folder)
    card = write_card(result.to_dict(), folder)
    return [results, card]
