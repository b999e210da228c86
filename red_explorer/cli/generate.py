"""`red-explorer generate`: the base model and each saved method side by side, same decoding."""

from __future__ import annotations

import argparse
import functools

from tqdm.auto import tqdm

from red_explorer.cli.common import add_model_arguments, print_json
from red_explorer.engine.compiled import COMPILE_MODES
from red_explorer.models.loading import load_model
from red_explorer.runs.attach import attach_saved, release


def register(commands) -> None:
    parser = commands.add_parser("generate", help="generate side by side: base and each trained edit")
    add_model_arguments(parser)
    parser.add_argument("--edits", nargs="*", default=[], help="edits directories (RED, TARE, LoRA, ...)")
    parser.add_argument("--prompt", action="append", required=True, help="a prompt (repeatable)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--no-repeat-ngram-size", type=int, default=0)
    parser.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        help="decode with a static KV cache and the forward compiled by torch.compile in this mode (reduce-overhead: "
        "CUDA graphs); the same tokens; meant for a GPU, where a small model's decoding is launch-bound; the first "
        "generation includes compiling",
    )
    parser.add_argument("--json", action="store_true", help="print the generations as JSON")
    parser.add_argument(
        "--strength", type=float, help="apply every --edits run at this strength (0 = base, 1 = as trained, 2 = twice)"
    )
    parser.set_defaults(run=run)


def _at_strength(model, strength: float | None) -> tuple:
    """The Contender context that applies ``strength`` (none when it is not given); refuses methods without one."""
    if strength is None:
        return ()
    from red_explorer.explore.strength import at_strength, strength_handler

    strength_handler(model)
    return (functools.partial(at_strength, model, strength),)


def run(args: argparse.Namespace) -> None:
    from red_explorer.engine.generation import Contender, DecodingSettings, chat_prompt, compare_generations

    loaded = load_model(args.model, device=args.device, dtype=args.dtype, quantize=args.quantize)
    settings = DecodingSettings(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.sample,
        temperature=args.temperature,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        compile=args.compile or "",
    )
    prompts = [chat_prompt(loaded.tokenizer, prompt) for prompt in args.prompt]
    columns = [compare_generations([Contender("base", loaded.model)], loaded.tokenizer, prompts, settings)]
    for directory in tqdm(args.edits, desc="edits", disable=len(args.edits) < 2):
        model, spec = attach_saved(loaded.model, directory)  # on the one loaded base: no model copy per edit
        try:
            label = spec.label if args.strength is None else f"{spec.label} at strength {args.strength:g}"
            contender = Contender(f"{label} [{directory}]", model, *_at_strength(model, args.strength))
            columns.append(compare_generations([contender], loaded.tokenizer, prompts, settings))
        finally:
            release(model, spec)
    generations = [column[index] for index in range(len(prompts)) for column in columns]  # prompt by prompt
    for generation, raw in zip(generations, [p for p in args.prompt for _ in columns], strict=True):
        generation.prompt = raw
    if args.json:
        print_json([generation.to_dict() for generation in generations])
        return
    for prompt in args.prompt:
        print(f"=== {prompt}")
        for generation in (g for g in generations if g.prompt == prompt):
            print(f"--- {generation.method} ({generation.seconds:.2f}s, {generation.tokens_per_second:.1f} tok/s)")
            print(generation.text)
