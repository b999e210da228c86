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

SUMMARY_KEYS = ("method", "trainable_parameters", "train_seconds", "peak_memory_bytes", "tokens_per_second")


def register(commands) -> None:
    parser = commands.add_parser("train", help="train one method (RED, TARE, LoRA, ...) on a data file")
    add_model_arguments(parser)
    add_training_arguments(parser)
    add_method_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from red_explorer.engine.experiment import default_train_config, save_run, train_method

    spec = spec_from(args)
    loaded, data = load_for_training(args)
    config = default_train_config(spec, **train_options(args))
    with tqdm(desc=f"training {spec.label}", unit="step") as bar:
        result = train_method(loaded, data, spec, config, callback=progress_callback(bar), copy_base=False)
    directory = save_run(result, loaded, ensure_directory(args.out))
    metrics = result.metrics()
    summary = {key: value for key, value in metrics.items() if key.startswith("val_") or key in SUMMARY_KEYS}
    print_json(summary | {"stopped_reason": result.stopped_reason, "out": str(directory)})
