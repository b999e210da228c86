"""What the CLI commands share: model and training arguments, loading data, progress bars, output."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from tqdm.auto import tqdm

from red_explorer.choice.defaults import DEFAULT_BATCH_SIZE
from red_explorer.core.registry import METHODS, MethodSpec, get_method
from red_explorer.engine.compiled import COMPILE_MODES
from red_explorer.engine.training import EvalEvent, StepEvent, epochs_for
from red_explorer.models.loading import load_model


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="default | minilm | PATH | HUB_ID")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    parser.add_argument(
        "--hub-kernels",
        action="store_true",
        default=None,
        help="let transformers fetch optimized kernels from the Hub (online only; same as RED_EXPLORER_HUB_KERNELS=1)",
    )
    parser.add_argument(
        "--quantize",
        choices=["4bit", "8bit"],
        help="store the frozen base quantized (bitsandbytes on CUDA, torchao on CPU); --dtype: the compute dtype",
    )


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="CSV, TSV, JSON, JSONL, Parquet or TXT file")
    parser.add_argument("--validation-data", help="a separate validation file (default: a seeded split)")
    parser.add_argument("--task", default="causal-lm", choices=["causal-lm", "classification"])
    parser.add_argument("--epochs", type=float, default=1.0, help="passes over the data (without --max-steps)")
    parser.add_argument(
        "--max-steps", type=int, help="the run's length in optimizer steps: the data repeats as often as it takes"
    )
    parser.add_argument("--lr", type=float, help="learning rate (default: the method's own, see --help of train)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--gradient-accumulation", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--max-rows", type=int, help="use at most this many rows of the file")
    parser.add_argument("--seed", type=int, default=0)
    add_recipe_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory")


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The optimiser recipe (defaults: TrainConfig's, the RED paper's linear decay after 6 % warm-up)."""
    parser.add_argument("--scheduler", default="linear", choices=["linear", "cosine", "constant"])
    parser.add_argument("--warmup-ratio", type=float, default=0.06, help="share of the steps spent warming up")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument(
        "--decay-toward-start",
        action="store_true",
        help="weight decay pulls toward the starting values (RED: scale toward 1, as scale = 1 + s) instead of 0",
    )
    parser.add_argument(
        "--lr-factor",
        action="append",
        default=[],
        metavar="SUFFIX=FACTOR",
        help="learning rate × FACTOR for parameters whose name ends with SUFFIX, e.g. red_scale=0.3 (repeatable)",
    )
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping norm; 0: no clipping")
    parser.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default="",
        help="compile the training step with torch.compile in this mode (reduce-overhead: CUDA graphs); pays on a "
        "GPU when steps are bound by kernel launches (small models); compiling takes tens of seconds first",
    )


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """--method and its options: named flags for RED, TARE and LoRA, and --option KEY=VALUE for any method."""
    rates = ", ".join(f"{name} {get_method(name).default_learning_rate:g}" for name in METHODS)
    parser.add_argument("--method", default="red", choices=METHODS, help=f"default learning rates: {rates}")
    parser.add_argument("--sites", default="ffn", help="RED/TARE sites: ffn, attn or ffn,attn")
    parser.add_argument("--no-scale", action="store_true", help="RED without the scaling vector")
    parser.add_argument("--no-bias", action="store_true", help="RED without the bias vector")
    parser.add_argument("--layers", help="layer indices to edit, e.g. 0,1,5 (default: all)")
    parser.add_argument("--target-modules", help="regex over module names: edit these instead")
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--tare-editors", type=int, default=4)
    parser.add_argument("--tare-top-k", type=int, default=2)
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any option of the chosen method's options (repeatable; VALUE is read as JSON when it parses)",
    )


def spec_from(args: argparse.Namespace) -> MethodSpec:
    """The MethodSpec the method arguments describe; options the method does not have are left out."""
    if args.no_scale and args.no_bias:
        raise ValueError("--no-scale and --no-bias together leave RED nothing to learn; drop one")
    given = {
        "variant": "scale" if args.no_bias else "bias" if args.no_scale else "full",
        "sites": args.sites,
        "layers": [int(index) for index in args.layers.split(",")] if args.layers else None,
        "target_modules": args.target_modules,
        "rank": args.lora_rank,
        "alpha": args.lora_alpha,
        "num_editors": args.tare_editors,
        "top_k": args.tare_top_k,
    }
    method = get_method(args.method)
    accepted = {field.name for field in fields(method.options)}
    options = {name: value for name, value in given.items() if name in accepted}
    for item in args.option:
        name, value = _option(item)
        if name not in accepted:
            raise ValueError(f"{method.title} has no option {name!r}; its options: {', '.join(sorted(accepted))}")
        options[name] = value
    return MethodSpec(args.method, **options)


def _option(item: str) -> tuple[str, object]:
    name, separator, text = item.partition("=")
    if not separator or not name.strip():
        raise ValueError(f"--option takes KEY=VALUE, got {item!r}")
    try:
        return name.strip().replace("-", "_"), json.loads(text)
    except json.JSONDecodeError:
        return name.strip().replace("-", "_"), text


def data_config(args: argparse.Namespace):
    from red_explorer.data.tables import DataConfig

    return DataConfig(task=args.task, max_length=args.max_length, seed=args.seed, max_rows=args.max_rows)


def train_options(args: argparse.Namespace) -> dict:
    options = {
        "epochs": epochs_for(args.epochs, args.max_steps),
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "gradient_accumulation": args.gradient_accumulation,
        "seed": args.seed,
        "scheduler": args.scheduler,
        "warmup_ratio": args.warmup_ratio,
        "weight_decay": args.weight_decay,
        "decay_toward_start": args.decay_toward_start,
        "lr_factors": dict(_lr_factor(item) for item in args.lr_factor),
        "max_grad_norm": args.max_grad_norm,
        "compile": args.compile,
    }
    return options | ({"learning_rate": args.lr} if args.lr else {})


def _lr_factor(item: str) -> tuple[str, float]:
    suffix, _, text = item.partition("=")
    try:
        return suffix.strip(), float(text)
    except ValueError:
        raise ValueError(f"--lr-factor takes SUFFIX=FACTOR such as red_scale=0.3, got {item!r}") from None


def load_for_training(args: argparse.Namespace):
    """The model (with a head sized to the data's labels for classification) and the prepared data."""
    from red_explorer.data.prepared import prepare_data
    from red_explorer.data.tables import load_table

    config = data_config(args)
    labels = None
    if args.task == "classification":
        labels = len(load_table(args.data, config, args.validation_data)[1].labels)
    loaded = load_model(
        args.model, task=args.task, num_labels=labels, device=args.device, dtype=args.dtype, quantize=args.quantize
    )
    data = prepare_data(args.data, loaded.tokenizer, config, args.validation_data)
    print(f"data: {data.detected.description}", flush=True)
    return loaded, data


def load_base_for_run(args: argparse.Namespace):
    """The base model the saved run ``args.edits`` goes on, with a head sized as the run's for classification."""
    from red_explorer.core.checkpoint import CONFIG_FILE, read_record

    record = read_record(args.edits) if (Path(args.edits) / CONFIG_FILE).is_file() else {}
    return load_model(
        args.model,
        task="classification" if record.get("head_parameters") else "causal-lm",
        num_labels=record.get("num_labels"),
        device=args.device,
        dtype=args.dtype,
        quantize=args.quantize,
    )


def progress_callback(bar: tqdm):
    def report(event):
        if isinstance(event, StepEvent):
            bar.total = event.total_steps
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.learning_rate:.1e}")
        elif isinstance(event, EvalEvent):
            bar.write(f"step {event.step}: validation loss {event.metrics['loss']:.4f}")

    return report


def print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def ensure_directory(path: str) -> Path:
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
