"""`red-explorer sweep`: learning-rate sweeps per method; writes results.json and the method card results.md."""

from __future__ import annotations

import argparse
from dataclasses import fields

from tqdm.auto import tqdm

from red_explorer.choice.defaults import DEFAULT_MAX_STEPS
from red_explorer.cli.common import (
    _option,
    add_model_arguments,
    add_training_arguments,
    ensure_directory,
    load_for_training,
    train_options,
)
from red_explorer.core.registry import METHODS, MethodSpec, get_method


def register(commands) -> None:
    parser = commands.add_parser(
        "sweep",
        help="learning-rate sweep per method, then the method card; writes results.json and results.md",
        description=f"Every point trains --max-steps optimizer steps (default {DEFAULT_MAX_STEPS}, as measured).",
    )
    add_model_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument(
        "--methods",
        default="red,lora",
        help=f"comma-separated, of: {', '.join(METHODS)}; options after colons, e.g. lora:rank=1:alpha=2",
    )
    parser.add_argument(
        "--lrs",
        default="auto",
        help="auto (each method's default rate × --factors) or rates for every method: 1e-3,1e-2",
    )
    parser.add_argument("--factors", default="0.1,0.333,1,3,10", help="with --lrs auto: multiples of the default")
    parser.add_argument(
        "--budgets",
        default="",
        help="run lengths in steps, e.g. 30,100,300: each method's best rate (found at --max-steps) trains again "
        "for each, and the card shows the budget curve",
    )
    parser.add_argument("--general-text", help="paragraphs for the forgetting measure (default: the bundled set)")
    parser.add_argument("--no-forgetting", action="store_true", help="skip the general-text loss before/after")
    parser.add_argument(
        "--generation-tokens", type=int, default=16, help="tokens generated to time generation overhead (0: skip)"
    )
    parser.set_defaults(run=run, max_steps=DEFAULT_MAX_STEPS)


def method_spec(text: str) -> MethodSpec:
    """``lora:rank=1:alpha=2`` -> MethodSpec("lora", rank=1, alpha=2) (values read as JSON when they parse)."""
    name, *items = text.split(":")
    method = get_method(name.strip())
    options = dict(_option(item) for item in items)
    unknown = sorted(set(options) - {field.name for field in fields(method.options)})
    if unknown:
        raise ValueError(f"{method.title} has no option {unknown[0]!r} (in --methods {text!r})")
    return MethodSpec(method.name, **options)


def _numbers(text: str, flag: str) -> list[float]:
    try:
        return [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated numbers such as 1e-3,1e-2, got {text!r}") from None


def sweep_config(args: argparse.Namespace):
    """The SweepConfig the arguments describe (training settings shared by every point)."""
    from red_explorer.choice.cost import CostConfig
    from red_explorer.choice.sweep import SweepConfig
    from red_explorer.engine.training import TrainConfig

    if args.lr:
        raise ValueError("sweep sets the learning rate of every point: give --lrs instead of --lr")
    return SweepConfig(
        learning_rates="auto" if args.lrs.strip() == "auto" else _numbers(args.lrs, "--lrs"),
        factors=_numbers(args.factors, "--factors"),
        budgets=_numbers(args.budgets, "--budgets"),
        train=TrainConfig(**train_options(args)),
        forgetting=not args.no_forgetting,
        general_text=args.general_text,
        cost=CostConfig(new_tokens=args.generation_tokens),
    )


def run(args: argparse.Namespace) -> None:
    from red_explorer.choice.card import card_rows, write_card
    from red_explorer.choice.sweep import run_sweep, write_results

    specs = [method_spec(text.strip()) for text in args.methods.split(",") if text.strip()]
    config = sweep_config(args)
    loaded, data = load_for_training(args)
    total = sum(len(config.rates_for(spec.entry)) + len(config.budgets) for spec in specs)
    with tqdm(total=total, desc="sweep", unit="run") as bar:

        def progress(index, count, event):
            bar.update(index - bar.n)
            bar.set_postfix(step=getattr(event, "step", 0))

        result = run_sweep(loaded, data, specs, config, on_progress=progress)
        bar.update(len(result.points) + len(result.budget_points) - bar.n)
    directory = ensure_directory(args.out)
    write_results(result, directory)
    results = result.to_dict()
    write_card(results, directory)
    for row in card_rows(results):
        print(f"{row['label']:<24} best lr {row['learning_rate']:<8g} {row['metric']} {row['after']:.4f}")
    for row in result.budget_points:
        print(f"{row['label']:<24} at {row['budget']} steps {row['metric']} {row['after']:.4f}")
    for label, reason in result.refused.items():
        print(f"{label:<24} refused this model: {reason}")
    print(f"wrote {directory / 'results.json'} and results.md")
