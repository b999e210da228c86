"""`red-explorer train`: train one method on a data file; writes its files and metrics.json."""

from __future__ import annotations

import argparse

from tqdm.auto import tqdm

from red_explorer.cli.common import (
    add_method_arguments,
    add_model_arguments,
    add_training_arguments,
    ensure_directory,
    load_for_training,
    print_json,
    progress_callback,
    spec_from,
    train_options,
)
from red_explorer.cli.runs import add_home_argument, keep_trained_run

SUMMARY_KEYS = ("method", "trainable_parameters", "train_seconds", "peak_memory_bytes", "tokens_per_second")


def register(commands) -> None:
    parser = commands.add_parser("train", help="train one method (RED, TARE, LoRA, ...) on a data file")
    add_model_arguments(parser)
    add_training_arguments(parser)
    add_method_arguments(parser)
    add_home_argument(parser)  # the run store that keeps the run (red-explorer runs list)
    for action in parser._actions:  # train reads the richer layer syntax of explore.layers.parse_layers
        if action.dest == "layers":
            action.help = "layers to edit: 0,1,5 | 5-9 | first:4 | last:4, or a mix (default: all)"
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from red_explorer.engine.distributed import gathered_trainables
    from red_explorer.engine.experiment import default_train_config, save_run, train_method
    from red_explorer.explore.layers import layer_count, parse_layers

    spec_from(argparse.Namespace(**(vars(args) | {"layers": None})))  # the other options fail before loading
    loaded, data = load_for_training(args)
    if args.layers:  # "1,2,5-9", "first:4", "last:4": "last" needs the model's layer count
        args.layers = ",".join(str(index) for index in parse_layers(args.layers, layer_count(loaded.model)))
    spec = spec_from(args)
    config = default_train_config(spec, **train_options(args))
    with tqdm(desc=f"training {spec.label}", unit="step") as bar:
        result = train_method(loaded, data, spec, config, callback=progress_callback(bar))
    with gathered_trainables(result.model):  # FSDP: the main process saves whole tensors
        directory = save_run(result, loaded, ensure_directory(args.out))
        run_id = keep_trained_run(args, result, loaded, data)
    metrics = result.metrics()
    summary = {key: value for key, value in metrics.items() if key.startswith("val_") or key in SUMMARY_KEYS}
    print_json(summary | {"stopped_reason": result.stopped_reason, "out": str(directory), "run_id": run_id})
