"""`red-explorer bench`: the cost benchmark; writes bench.json and a markdown report."""

from __future__ import annotations

import argparse

from red_explorer.cli.common import add_model_arguments, print_json


def register(commands) -> None:
    parser = commands.add_parser("bench", help="measure RED's cost against the floor, LoRA and the base model")
    add_model_arguments(parser)
    parser.add_argument("--out", default="bench", help="output directory for bench.json")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (few repetitions, tiny shapes)")
    parser.add_argument(
        "--minutes",
        type=float,
        help="a time budget: the sections after generation start only while it lasts (the rest are marked skipped)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from red_explorer.bench.run import run_benchmark

    if args.minutes is not None and args.minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {args.minutes}")
    seconds = None if args.minutes is None else 60 * args.minutes
    result = run_benchmark(
        args.model, args.device, args.dtype, args.quick, args.out, quantize=args.quantize, seconds=seconds
    )
    print_json(result["summary"])
