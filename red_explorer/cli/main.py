"""Command-line interface: train, ablate, generate, merge and bench, each with --help."""

from __future__ import annotations

import argparse
import sys

from red_explorer.core.registry import METHODS

EPILOG = "Models: 'default' (SmolLM2-135M-Instruct, offline), 'minilm' (encoder), a local folder or a hub id."


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="default | minilm | PATH | HUB_ID")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="CSV, TSV, JSON, JSONL, Parquet or TXT file")
    parser.add_argument("--validation-data", help="a separate validation file (default: a seeded split)")
    parser.add_argument("--task", default="causal-lm", choices=["causal-lm", "classification"])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument("--lr", type=float, help="learning rate (default: RED/TARE 1e-2, LoRA 3e-4, full 5e-5)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--gradient-accumulation", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--max-rows", type=int, help="use at most this many rows of the file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output directory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="red-explorer", description=__doc__, epilog=EPILOG)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train RED, TARE, LoRA or full fine-tuning on a data file")
    _model_arguments(train)
    _training_arguments(train)
    train.add_argument("--method", default="red", choices=METHODS)
    train.add_argument("--sites", default="ffn", help="RED/TARE sites: ffn, attn or ffn,attn")
    train.add_argument("--no-scale", action="store_true", help="RED without the scaling vector")
    train.add_argument("--no-bias", action="store_true", help="RED without the bias vector")
    train.add_argument("--layers", help="comma-separated layer indices to edit (default: all)")
    train.add_argument("--target-modules", help="regex over module names: edit these instead")
    train.add_argument("--lora-rank", type=int, default=8)
    train.add_argument("--lora-alpha", type=int, default=16)
    train.add_argument("--tare-editors", type=int, default=4)
    train.add_argument("--tare-top-k", type=int, default=2)

    ablate = commands.add_parser("ablate", help="run an ablation grid; writes results.csv and results.json")
    _model_arguments(ablate)
    _training_arguments(ablate)
    ablate.add_argument(
        "--rows",
        help="comma-separated rows such as red:full:ffn,red:bias:attn,tare,lora "
        "(default: RED full/scale/bias × ffn/attn/ffn+attn, plus LoRA)",
    )

    generate = commands.add_parser("generate", help="generate side by side: base and each trained edit")
    _model_arguments(generate)
    generate.add_argument("--edits", nargs="*", default=[], help="edits directories (RED, TARE or LoRA)")
    generate.add_argument("--prompt", action="append", required=True, help="a prompt (repeatable)")
    generate.add_argument("--max-new-tokens", type=int, default=64)
    generate.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--top-p", type=float, default=1.0)
    generate.add_argument("--repetition-penalty", type=float, default=1.0)
    generate.add_argument("--no-repeat-ngram-size", type=int, default=0)
    generate.add_argument("--json", action="store_true", help="print the generations as JSON")

    merge = commands.add_parser("merge", help="fold RED edits (or a LoRA adapter) into the weights: a plain checkpoint")
    _model_arguments(merge)
    merge.add_argument("--edits", required=True, help="a RED edits directory or a LoRA adapter directory")
    merge.add_argument("--out", required=True, help="output checkpoint directory")

    bench = commands.add_parser("bench", help="measure RED's cost against the floor, LoRA and the base model")
    _model_arguments(bench)
    bench.add_argument("--out", default="bench", help="output directory for bench.json")
    bench.add_argument("--quick", action="store_true", help="a fast smoke run (few repetitions, tiny shapes)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from red_explorer.cli import commands

    try:
        getattr(commands, f"run_{args.command}")(args)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
