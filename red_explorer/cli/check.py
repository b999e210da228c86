"""`red-explorer check`: train, compare and run the app on one device in a few minutes; check.json + check.md."""

from __future__ import annotations

import argparse

from red_explorer.check.report import DEFAULT_MINUTES, DEFAULT_STEPS


def register(commands) -> None:
    parser = commands.add_parser(
        "check", help="a few-minute offline check of training, exactness, Compare and the app on one device"
    )
    parser.add_argument("--device", default="cuda", help="cuda | cpu | auto | cuda:N | mps (default: cuda)")
    parser.add_argument(
        "--model", help="random:smollm2 (default on CUDA), tiny (default elsewhere), random:llama-7b, default, PATH"
    )
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on CUDA, else float32) | float32 | bfloat16")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training steps per method")
    parser.add_argument("--out", default="check", help="output directory for check.json and check.md")
    parser.add_argument(
        "--bench",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the cost benchmark last, into OUT/bench (default: on CUDA)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=DEFAULT_MINUTES,
        help=f"the whole check's time budget: past it the bench skips its later sections (default {DEFAULT_MINUTES:g})",
    )
    parser.add_argument(
        "--hub-kernels",
        action="store_true",
        default=None,
        help="let transformers fetch optimized kernels from the Hub (online only)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from red_explorer.check.run import run_check

    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {args.minutes}")
    report = run_check(args.device, args.out, args.model, args.dtype, args.steps, args.bench, 60 * args.minutes)
    for result in report.results:
        print(f"{'pass' if result.passed else 'FAIL'}  {result.name}: {result.value}", flush=True)
    failed = [result.name for result in report.results if not result.passed]
    if failed:  # the CLI prints it as an error and exits with status 1
        raise RuntimeError(
            f"{len(failed)} of {len(report.results)} checks failed ({'; '.join(failed)}): see {args.out}/check.md"
        )
    print(f"all {len(report.results)} checks passed; report: {args.out}/check.md")
