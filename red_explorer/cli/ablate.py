"""`red-explorer ablate`: a grid of methods through the one training path; writes results.csv and .json."""

from __future__ import annotations

import argparse

from tqdm.auto import tqdm

from red_explorer.cli.common import (
    add_model_arguments,
    add_training_arguments,
    ensure_directory,
    load_for_training,
    train_options,
)


def register(commands) -> None:
    parser = commands.add_parser("ablate", help="run an ablation grid; writes results.csv and results.json")
    add_model_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument(
        "--rows",
        help="comma-separated rows such as red:full:ffn,red:bias:attn,tare,lora "
        "(default: RED full/scale/bias × ffn/attn/ffn+attn, plus LoRA)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from red_explorer.engine.ablation import ablation_grid, parse_row, run_ablation, write_results

    specs = [parse_row(row) for row in args.rows.split(",")] if args.rows else ablation_grid()
    loaded, data = load_for_training(args)
    with tqdm(total=len(specs), desc="ablation", unit="run") as bar:

        def progress(index, total, event):
            bar.update(index - bar.n)
            bar.set_postfix(row=specs[index].label, step=getattr(event, "step", 0))

        rows = run_ablation(loaded, data, specs, train_options(args), on_progress=progress)
        bar.update(len(rows) - bar.n)
    directory = write_results(rows, ensure_directory(args.out))
    for row in rows:
        print(
            f"{row['label']:<28} params {row['trainable_parameters']:>10,}  "
            f"{row['metric']} {row['before']:.4f} -> {row['after']:.4f}  {row['train_seconds']:.1f}s"
        )
    print(f"wrote {directory / 'results.csv'} and results.json")
