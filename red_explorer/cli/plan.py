"""`red-explorer plan`: the memory a model needs in each precision, from its config alone, and whether it fits."""

from __future__ import annotations

import argparse
from dataclasses import asdict

import torch

from red_explorer.choice.defaults import DEFAULT_BATCH_SIZE
from red_explorer.cli.common import print_json


def register(commands) -> None:
    parser = commands.add_parser(
        "plan", help="memory a model needs in float32, bf16, 8 and 4 bits (weights, RED training, generation)"
    )
    parser.add_argument("--model", default="default", help="default | minilm | tiny | random:NAME | PATH | HUB_ID")
    parser.add_argument("--task", default="causal-lm", choices=["causal-lm", "classification"])
    parser.add_argument(
        "--device", default="auto", help="the device to plan for: auto | cpu | cuda (with --memory-gib, any of them)"
    )
    parser.add_argument("--dtype", default="auto", help="compute dtype of the 8- and 4-bit rows (auto: as loading)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--max-length", type=int, default=256, help="tokens per row, for training and generation")
    parser.add_argument("--memory-gib", type=float, help="plan against this much memory instead of the device's free")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON instead of a table")
    parser.set_defaults(run=run)


def _device_and_dtype(args: argparse.Namespace) -> tuple[torch.device, str]:
    """The device planned for (with ``--memory-gib`` one this machine need not have) and the compute dtype."""
    from red_explorer.models.loading import resolve_device, resolve_dtype

    if args.memory_gib is not None and args.device != "auto":
        device = torch.device(args.device)
        if args.dtype == "auto":
            return device, "bfloat16" if device.type == "cuda" else "float32"
    else:
        device = resolve_device(args.device)
    return device, str(resolve_dtype(args.dtype, device)).removeprefix("torch.")


def run(args: argparse.Namespace) -> None:
    from red_explorer.models.memory_plan import plan_markdown, plan_memory
    from red_explorer.models.model_shape import model_shape

    device, compute = _device_and_dtype(args)
    available = None if args.memory_gib is None else int(args.memory_gib * 2**30)
    shape = model_shape(args.model, args.task)
    plan = plan_memory(shape, args.batch_size, args.max_length, device, available, compute)
    if args.json:
        print_json(asdict(plan) | {"verdicts": {row.precision: row.verdict for row in plan.rows}})
    else:
        print(plan_markdown(plan))
