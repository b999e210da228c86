"""Command-line interface: `red-explorer <command>` (or `python -m red_explorer`), each command with --help."""

from __future__ import annotations

import argparse
import sys

from red_explorer.cli import ablate, bench, check, control_vector, explore, generate, merge, plan, runs, sweep, train
from red_explorer.models.loading import settle_hub_kernels

EPILOG = "Models: 'default' (SmolLM2-135M-Instruct, offline), 'minilm' (encoder), a local folder or a hub id."
# each module registers its subcommand
COMMANDS = (train, ablate, sweep, generate, merge, bench, check, explore, control_vector, runs, plan)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="red-explorer", description=__doc__, epilog=EPILOG)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settle_hub_kernels(getattr(args, "hub_kernels", None))  # off unless --hub-kernels or the env asks
    try:
        args.run(args)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
