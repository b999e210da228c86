"""What each CLI command does, on top of the engine; progress through tqdm."""

from __future__ import annotations

import argparse
import copy
from dataclasses import fields
from pathlib import Path

from tqdm.auto import tqdm

from red_explorer.cli.output import ensure_directory, print_json
from red_explorer.core.registry import MethodSpec, get_method, load_method
from red_explorer.engine.training import EvalEvent, StepEvent
from red_explorer.models.loading import load_model


def _data_config(args: argparse.Namespace):
    from red_explorer.data.tables import DataConfig

    return DataConfig(task=args.task, max_length=args.max_length, seed=args.seed, max_rows=args.max_rows)


def _train_options(args: argparse.Namespace) -> dict:
    options = {
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "gradient_accumulation": args.gradient_accumulation,
        "seed": args.seed,
    }
    return options | ({"learning_rate": args.lr} if args.lr else {})


def _load_for_training(args: argparse.Namespace):
    from red_explorer.data.prepared import prepare_data

    data_config = _data_config(args)
    labels = None
    if args.task == "classification":
        from red_explorer.data.tables import load_table

        labels = len(load_table(args.data, data_config, args.validation_data)[1].labels)
    loaded = load_model(args.model, task=args.task, num_labels=labels, device=args.device, dtype=args.dtype)
    data = prepare_data(args.data, loaded.tokenizer, data_config, args.validation_data)
    print(f"data: {data.detected.description}", flush=True)
    return loaded, data


def _progress_callback(bar: tqdm):
    def report(event):
        if isinstance(event, StepEvent):
            bar.total = event.total_steps
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.learning_rate:.1e}")
        elif isinstance(event, EvalEvent):
            bar.write(f"step {event.step}: validation loss {event.metrics['loss']:.4f}")

    return report


def _spec_from(args: argparse.Namespace) -> MethodSpec:
    variant = "scale" if args.no_bias else "bias" if args.no_scale else "full"
    if args.no_scale and args.no_bias:
        raise ValueError("--no-scale and --no-bias together leave RED nothing to learn; drop one")
    layers = [int(index) for index in args.layers.split(",")] if args.layers else None
    given = {
        "variant": variant,
        "sites": args.sites,
        "layers": layers,
        "target_modules": args.target_modules,
        "rank": args.lora_rank,
        "alpha": args.lora_alpha,
        "num_editors": args.tare_editors,
        "top_k": args.tare_top_k,
    }
    accepted = {field.name for field in fields(get_method(args.method).options)}
    return MethodSpec(args.method, **{name: value for name, value in given.items() if name in accepted})


def run_train(args: argparse.Namespace) -> None:
    from red_explorer.engine.experiment import default_train_config, save_run, train_method

    spec = _spec_from(args)
    loaded, data = _load_for_training(args)
    config = default_train_config(spec, **_train_options(args))
    with tqdm(desc=f"training {spec.label}", unit="step") as bar:
        result = train_method(loaded, data, spec, config, callback=_progress_callback(bar), copy_base=False)
    directory = save_run(result, loaded, ensure_directory(args.out))
    metrics = result.metrics()
    summary = {key: value for key, value in metrics.items() if key.startswith("val_") or key in SUMMARY_KEYS}
    print_json(summary | {"stopped_reason": result.stopped_reason, "out": str(directory)})


SUMMARY_KEYS = ("method", "trainable_parameters", "train_seconds", "peak_memory_bytes", "tokens_per_second")


def run_ablate(args: argparse.Namespace) -> None:
    from red_explorer.engine.ablation import ablation_grid, parse_row, run_ablation, write_results

    specs = [parse_row(row) for row in args.rows.split(",")] if args.rows else ablation_grid()
    loaded, data = _load_for_training(args)
    with tqdm(total=len(specs), desc="ablation", unit="run") as bar:

        def progress(index, total, event):
            bar.update(index - bar.n)
            bar.set_postfix(row=specs[index].label, step=getattr(event, "step", 0))

        rows = run_ablation(loaded, data, specs, _train_options(args), on_progress=progress)
        bar.update(len(rows) - bar.n)
    directory = write_results(rows, ensure_directory(args.out))
    for row in rows:
        print(
            f"{row['label']:<28} params {row['trainable_parameters']:>10,}  "
            f"{row['metric']} {row['before']:.4f} -> {row['after']:.4f}  {row['train_seconds']:.1f}s"
        )
    print(f"wrote {directory / 'results.csv'} and results.json")


def run_generate(args: argparse.Namespace) -> None:
    from red_explorer.engine.generation import Contender, DecodingSettings, chat_prompt, compare_generations

    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    settings = DecodingSettings(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.sample,
        temperature=args.temperature,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
    )
    contenders = [Contender("base", loaded.model)]
    for directory in tqdm(args.edits, desc="loading edits", disable=len(args.edits) < 2):
        model, spec = load_method(copy.deepcopy(loaded.model), directory)
        contenders.append(Contender(f"{spec.label} [{directory}]", model))
    prompts = [chat_prompt(loaded.tokenizer, prompt) for prompt in args.prompt]
    generations = compare_generations(contenders, loaded.tokenizer, prompts, settings)
    for generation, raw in zip(generations, [p for p in args.prompt for _ in contenders], strict=True):
        generation.prompt = raw
    if args.json:
        print_json([generation.to_dict() for generation in generations])
        return
    for prompt in args.prompt:
        print(f"=== {prompt}")
        for generation in (g for g in generations if g.prompt == prompt):
            print(f"--- {generation.method} ({generation.seconds:.2f}s, {generation.tokens_per_second:.1f} tok/s)")
            print(generation.text)


def run_merge(args: argparse.Namespace) -> None:
    from red_explorer.core.checkpoint import CONFIG_FILE, read_record
    from red_explorer.core.merged import save_merged

    record = read_record(args.edits) if (Path(args.edits) / CONFIG_FILE).is_file() else {}
    task = "classification" if record.get("head_parameters") else "causal-lm"
    loaded = load_model(
        args.model, task=task, num_labels=record.get("num_labels"), device=args.device, dtype=args.dtype
    )
    model, spec = load_method(loaded.model, args.edits)
    directory = save_merged(model, args.out, loaded.tokenizer)
    print(f"{spec.label} merged; checkpoint written to {directory}; load it with AutoModelFor*.from_pretrained")


def run_bench(args: argparse.Namespace) -> None:
    from red_explorer.bench.run import run_benchmark

    result = run_benchmark(args.model, device=args.device, dtype=args.dtype, quick=args.quick, out=args.out)
    print_json(result["summary"])
