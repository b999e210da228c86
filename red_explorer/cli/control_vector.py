"""`red-explorer control-vector export|import`: a RED bias as a llama.cpp control vector (GGUF), and back."""

from __future__ import annotations

import argparse
import sys
import warnings

from red_explorer.cli.common import add_model_arguments


def register(commands) -> None:
    parser = commands.add_parser(
        "control-vector", help="export a RED bias as a llama.cpp control vector (GGUF), or import one as a RED run"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="write the bias of a RED run as FILE.gguf (llama.cpp --control-vector)")
    export.add_argument("--edits", required=True, help="a RED edits directory (bias on FFN sites, layers 1 and up)")
    add_model_arguments(export)  # the run's base: it decides how an FFN bias reaches the residual stream
    export.add_argument("--out", required=True, help="the control-vector file to write, e.g. vector.gguf")
    export.add_argument(
        "--bias-only",
        action="store_true",
        help="export the FFN bias of layers 1 and up: leave out a scale part and layer 0 (said) instead of refusing",
    )
    imported = actions.add_parser("import", help="save a control-vector GGUF as a bias-only RED run on --model")
    imported.add_argument("file", help="a control-vector GGUF (llama.cpp cvector-generator, repeng, or an export)")
    add_model_arguments(imported)
    imported.add_argument("--out", required=True, help="the RED edits directory to write")
    imported.add_argument("--strength", type=float, default=1.0, help="multiply every direction (default 1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (run_export if args.action == "export" else run_import)(args)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)


def run_export(args: argparse.Namespace) -> None:
    from red_explorer.core.layer_ranges import layer_ranges
    from red_explorer.explore.control_vector import NeedsBiasOnly, export_control_vector
    from red_explorer.explore.gguf_file import read_control_vector
    from red_explorer.models.loading import load_model

    model = load_model(args.model, device=args.device, dtype=args.dtype, quantize=args.quantize).model
    try:
        exported = export_control_vector(args.edits, args.out, model, bias_only=args.bias_only)
    except NeedsBiasOnly as error:
        retrain = {"scale": "red-explorer train --no-scale", "layer 0": "red-explorer train --layers 1,2,…"}
        raise ValueError(error.advice("add --bias-only", retrain[error.part])) from error
    for part in exported.dropped:
        print(f"warning: left out {part}", file=sys.stderr)
    width, path = read_control_vector(exported.path).width, exported.path
    print(f"wrote {path}: {len(exported.layers)} directions of width {width} ({layer_ranges(exported.layers)})")
    print(f"use it with llama.cpp: llama-cli -m MODEL.gguf --control-vector {path}")


def run_import(args: argparse.Namespace) -> None:
    from red_explorer.explore.control_vector import import_control_vector
    from red_explorer.models.loading import load_model

    loaded = load_model(args.model, device=args.device, dtype=args.dtype, quantize=args.quantize)
    directory = import_control_vector(loaded.model, args.file, args.out, args.strength, loaded.base_name)
    print(f"wrote a bias-only RED run at strength {args.strength:g} to {directory}; load it with load_edits")
