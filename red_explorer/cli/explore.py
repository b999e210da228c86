"""`red-explorer explore`: dose-response, layer importance and token drift as JSON; edit arithmetic on RED runs."""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path

from red_explorer.cli.common import add_model_arguments, print_json


def register(commands) -> None:
    parser = commands.add_parser("explore", help="explore a trained edit: strength, layers, drift, arithmetic")
    actions = parser.add_subparsers(dest="action", required=True)
    dose = actions.add_parser("dose-response", help="validation loss and KL from the base per strength (JSON)")
    _add_data_arguments(dose)
    dose.add_argument("--strengths", default="-1,-0.5,0,0.5,1,1.5,2,2.5,3", help="e.g. --strengths=-1,0,1,2")
    layers = actions.add_parser("layers", help="a RED run's loss without each layer and with it alone (JSON)")
    _add_data_arguments(layers)
    drift = actions.add_parser("drift", help="per-token KL from the base and the top changed predictions (JSON)")
    _add_edits_arguments(drift)
    drift.add_argument("--text", required=True, help="the text to score (e.g. a generation)")
    drift.add_argument("--prompt", help="a prompt before the text (its tokens are marked as prompt)")
    drift.add_argument("--chat", action="store_true", help="format --prompt with the model's chat template")
    drift.add_argument("--top-k", type=int, default=5, help="candidates per token whose probability rose/fell most")
    drift.add_argument("--strength", type=float, help="apply the edit at this strength")
    for name, help_text in ARITHMETIC_HELP.items():
        operation = actions.add_parser(name, help=help_text)
        operation.add_argument("edits", nargs="+", help="RED edits directories of the same base and sites")
        operation.add_argument("--out", required=True, help="the RED edits directory to write")
        if name == "mix":
            operation.add_argument("--weights", required=True, help="one weight per run, e.g. 0.5,0.5 or 1,-1")
    parser.set_defaults(run=run)


ARITHMETIC_HELP = {
    "compose": "apply run A then run B, as one RED run (exact)",
    "mix": "a weighted sum of the runs' changes: s = 1 + Σ w (s − 1), b = Σ w b",
    "negate": "the run at strength −1: s = 2 − s, b = −b",
    "invert": "the exact inverse of the run: s = 1/s, b = −b/s",
}
ARITHMETIC_ARITY = {"compose": 2, "negate": 1, "invert": 1}


def _add_edits_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--edits", required=True, help="an edits directory (RED, TARE) or a PEFT adapter directory")


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    _add_edits_arguments(parser)
    parser.add_argument("--data", required=True, help="the data file whose validation split is scored")
    parser.add_argument("--validation-data", help="a separate validation file (default: the seeded split)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--max-rows", type=int, help="use at most this many rows of the file")
    parser.add_argument("--seed", type=int, default=0, help="the split seed (the one training used)")


def run(args: argparse.Namespace) -> None:
    if args.action in ARITHMETIC_HELP:
        print_json({"out": str(_arithmetic(args))})
        return
    loaded, model, task = _load_edited(args)
    if args.action == "drift":
        print_json(_drift(args, loaded, model).to_dict())
        return
    batches = _validation_batches(args, loaded, task)
    if args.action == "dose-response":
        from red_explorer.explore.strength import dose_response

        strengths = [float(value) for value in args.strengths.split(",") if value.strip()]
        print_json([point.to_dict() for point in dose_response(model, batches, strengths)])
    else:
        from red_explorer.explore.layers import layer_importance

        print_json(layer_importance(model, batches, task).to_dict())


def _arithmetic(args: argparse.Namespace) -> Path:
    from red_explorer.explore import arithmetic

    expected = ARITHMETIC_ARITY.get(args.action)
    if expected is not None and len(args.edits) != expected:
        raise ValueError(f"{args.action} takes {expected} edits director{'y' if expected == 1 else 'ies'}")
    if args.action == "compose":
        return arithmetic.compose_runs(args.edits[0], args.edits[1], args.out)
    if args.action == "mix":
        weights = [float(value) for value in args.weights.split(",") if value.strip()]
        return arithmetic.mix_runs(args.edits, weights, args.out)
    operation = arithmetic.negate_run if args.action == "negate" else arithmetic.invert_run
    return operation(args.edits[0], args.out)


def _load_edited(args: argparse.Namespace):
    """The base (with a head sized as the run's, for classification), the edited model, and the task."""
    from red_explorer.cli.common import load_base_for_run
    from red_explorer.runs.attach import attach_saved

    loaded = load_base_for_run(args)
    model, _ = attach_saved(loaded.model, args.edits)  # keeps the base's head: a strength of 0 is the base
    return loaded, model, loaded.task


def _validation_batches(args: argparse.Namespace, loaded, task: str):
    from red_explorer.data.prepared import prepare_data
    from red_explorer.data.tables import DataConfig

    config = DataConfig(task=task, max_length=args.max_length, seed=args.seed, max_rows=args.max_rows)
    data = prepare_data(args.data, loaded.tokenizer, config, args.validation_data)
    return data.validation_batches(args.batch_size)


def _drift(args: argparse.Namespace, loaded, model):
    from red_explorer.engine.generation import chat_prompt
    from red_explorer.explore.drift import token_drift
    from red_explorer.explore.strength import at_strength

    prompt = chat_prompt(loaded.tokenizer, args.prompt) if args.chat and args.prompt else args.prompt
    context = at_strength(model, args.strength) if args.strength is not None else nullcontext()
    with context:
        return token_drift(model, loaded.tokenizer, args.text, prompt, args.top_k)
