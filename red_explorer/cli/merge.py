"""`red-explorer merge`: fold saved edits (or an adapter) into the weights: a plain checkpoint folder."""

from __future__ import annotations

import argparse

from red_explorer.cli.common import add_model_arguments, load_base_for_run
from red_explorer.core.registry import detect_method, load_method


def register(commands) -> None:
    parser = commands.add_parser("merge", help="fold RED edits (or a LoRA adapter) into the weights")
    add_model_arguments(parser)
    parser.add_argument("--edits", required=True, help="an edits directory or a PEFT adapter directory")
    parser.add_argument("--out", required=True, help="output checkpoint directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from red_explorer.core.merged import save_merged

    detect_method(args.edits)  # a folder that holds no method fails before the model loads
    loaded = load_base_for_run(args)
    model, spec = load_method(loaded.model, args.edits)
    directory = save_merged(model, args.out, loaded.tokenizer)
    print(f"{spec.label} merged; checkpoint written to {directory}; load it with AutoModelFor*.from_pretrained")
