"""The benchmark's verdicts and its markdown report: each target met or not, with the measured figure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Target:
    """One promise of issue #5: ``key`` of bench.json compared with ``limit`` by ``kind``."""

    key: str
    text: str
    kind: str  # "at_most", "at_least" or "within" (|value - 1| <= limit)
    limit: float

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        if self.kind == "at_most":
            return value <= self.limit
        if self.kind == "at_least":
            return value >= self.limit
        return abs(value - 1.0) <= self.limit


TARGETS = (
    Target("red_step_over_floor", "RED training step <= 1.05 x floor", "at_most", 1.05),
    Target("red_step_over_lora", "RED training step no slower than LoRA r=8", "at_most", 1.0),
    Target("merged_generate_over_base", "RED merged generation = base within 3 %", "within", 0.03),
    Target("attached_generate_over_base", "RED attached generation <= 1.10 x base time", "at_most", 1.10),
    Target("many_edits_over_one_edit", "8 distinct edits in one batch <= 1.10 x one shared edit", "at_most", 1.10),
    Target("red_swap_ms", "swap RED edits on a loaded model < 10 ms", "at_most", 10.0),
    Target("engine_over_raw_throughput", "engine training throughput >= 90 % of the raw loop", "at_least", 0.90),
    Target("store_memory_per_run_mb", "memory held per kept RED run < 2 MB (25 runs vs 1)", "at_most", 2.0),
    Target(
        "compare_batched_over_sequential",
        "base + 8 RED runs in one generate call <= 0.35 x the 9 separate calls",
        "at_most",
        0.35,
    ),
    Target(
        "demo_preset_max_seconds",
        "slowest one-minute demo (sample, training, first generation) <= 60 s",
        "at_most",
        60.0,
    ),
    Target("red_compiled_step_over_eager", "compiled RED step >= 2 x faster than eager (<= 0.5 x)", "at_most", 0.5),
    Target(
        "red_compiled_step_over_floor",
        "compiled RED step <= 1.05 x the eager floor (medians of two sections)",
        "at_most",
        1.05,
    ),
)


def verdicts(result: dict) -> list[dict]:
    return [
        asdict(target) | {"value": result.get(target.key), "met": target.met(result.get(target.key))}
        for target in TARGETS
    ]


def _number(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _megabytes(value) -> str:
    if isinstance(value, str):  # a reason it was not measured ("out of memory")
        return value
    return "–" if value is None else f"{value / 2**20:,.1f}"


def _training_table(training: dict) -> list[str]:
    lines = ["| training step | median ms | × floor | peak memory MiB | trainable params |", "|---|---|---|---|---|"]
    for row in training.values():
        note = f" ({row['skipped']})" if row.get("skipped") else ""
        lines.append(
            f"| {row['label']}{note} | {_number(row['median_ms'], 1)} | {_number(row['ratio_to_floor'])} "
            f"| {_megabytes(row['peak_memory_bytes'])} | {_number(row['trainable_parameters'])} |"
        )
    return lines


def _generation_table(generation: dict) -> list[str]:
    lines = ["| generation | median ms | tokens/s | time × base |", "|---|---|---|---|"]
    for name, row in generation.items():
        lines.append(
            f"| {name} | {_number(row['median_ms'], 1)} | {_number(row['tokens_per_second'], 1)} "
            f"| {_number(row['time_ratio_to_base'])} |"
        )
    return lines


def _swap_lines(result: dict) -> list[str]:
    swap, sizes = result["swap"], result["swap"]["sizes"]
    return [
        "| switch / size | RED | LoRA r=8 |",
        "|---|---|---|",
        f"| switch edits (ms, median) | {_number(swap['red_swap_ms'])} | {_number(swap['lora_swap_ms'])} (hotswap) |",
        f"| alternative switch (ms) | {_number(swap['red_detach_and_load_ms'])} (detach + load) "
        f"| {_number(swap['lora_load_adapter_ms'])} (load_adapter + set_adapter) |",
        f"| files on disk (bytes) | {sizes['red_bytes']:,} | {sizes['lora_bytes']:,} |",
        "",
        f"TARE edits: {sizes['tare_bytes']:,} bytes; "
        f"a full fine-tuned checkpoint: {sizes['full_checkpoint_bytes']:,} bytes.",
    ]


def _budget_line(seconds: float | None) -> list[str]:
    if seconds is None:
        return []
    return [f"- time budget {seconds:.0f} s: the sections after generation start only while time is left"]


def _unless_skipped(figures: dict, lines: Callable[[dict], list[str]]) -> list[str]:
    """A section's lines, or why it was skipped."""
    return [f"Skipped: {figures['skipped']}."] if "skipped" in figures else lines(figures)


def _many_lines(many: dict) -> list[str]:
    return [
        f"{many['distinct_edits']} distinct edits (row b uses edit b) vs one shared edit: generation × "
        f"{_number(many['generate_ratio'])}, one forward pass × {_number(many['forward_ratio'])}."
    ]


def _engine_lines(engine: dict) -> list[str]:
    return [
        f"{engine['rows']} rows of `{engine['data']}`, {engine['batches']} length-grouped batches, "
        f"{engine['tokens']:,} real tokens (padding efficiency {engine['padding_efficiency']:.2f}):",
        f"engine {engine['engine_tokens_per_second']:.1f} tokens/s vs raw loop {engine['raw_tokens_per_second']:.1f} "
        f"tokens/s = {engine['engine_over_raw_throughput']:.3f}",
    ]


def markdown(result: dict) -> str:
    """bench.md: the machine, the tables and the verdicts."""
    shape = result["batch_shape"]
    lines = [
        f"# RED Explorer benchmark: {result['model']}",
        "",
        f"- model: {result['model_description']}",
        f"- device: {result['device']} ({result['device_name']}); torch {result['versions']['torch']}, "
        f"transformers {result['versions']['transformers']}, peft {result['versions']['peft']}",
        f"- training batch {shape['train']}, generation batch {shape['generate']} (B, prompt, new tokens); "
        f"medians of {result['repetitions']} timed runs per figure, variants interleaved",
        *_budget_line(result.get("time_budget_seconds")),
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for verdict in result["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[verdict["met"]]
        lines.append(f"| {verdict['text']} | {_number(verdict['value'])} | {met} |")
    lines += ["", "## Training step (forward + backward + AdamW step)", "", *_training_table(result["training"])]
    lines += ["", f"Memory: {result['memory_measure']}.", ""]
    lines += ["## Compiled training step", "", *_unless_skipped(result["compiled_step"], _compiled_lines), ""]
    compiled_generation = result["compiled_generation"]
    lines += ["## Compiled generation", "", *_unless_skipped(compiled_generation, _compiled_generation_lines), ""]
    lines += ["## Generation", ""]
    lines += _generation_table(result["generation"])
    lines += ["", "## Many edits in one batch", "", *_unless_skipped(result["many_edits"], _many_lines)]
    lines += ["", "## Swapping edits and file sizes", "", *_swap_lines(result), "", "## Engine overhead", ""]
    lines += _unless_skipped(result["engine"], _engine_lines)
    lines += ["", "## Runs as edits", "", *_unless_skipped(result["run_store"], _store_lines)]
    lines += ["", *_unless_skipped(result["batched_compare"], _batched_lines)]
    lines += ["", "## One-minute demos", "", *_unless_skipped(result["demos"], _demo_lines)]
    lines += ["", "## Memory per base precision", "", *_unless_skipped(result["memory"], _memory_lines)]
    return "\n".join(lines) + "\n"


def _compiled_lines(compiled: dict) -> list[str]:
    return [
        f"RED's step through `torch.compile` (mode {compiled['mode']}): {_number(compiled['red_compiled_ms'])} ms vs "
        f"{_number(compiled['red_eager_ms'])} ms eager = {_number(compiled['compiled_over_eager'])} x (paired turns); "
        f"{_number(compiled['compiled_over_floor'])} x the training section's floor median. Compiling took "
        f"{compiled['compile_seconds']:.1f} s once, outside the timings. First step's loss: "
        f"{compiled['first_loss_compiled']:.5f} compiled, {compiled['first_loss_eager']:.5f} eager.",
    ]


def _compiled_generation_lines(compiled: dict) -> list[str]:
    same = "the same greedy tokens" if compiled["same_tokens"] else "greedy tokens that differ from eager"
    return [
        f"RED attached, greedy, static KV cache and a compiled forward (mode {compiled['mode']}): "
        f"{_number(compiled['red_compiled_tokens_per_second'], 1)} tokens/s vs "
        f"{_number(compiled['red_eager_tokens_per_second'], 1)} eager = {_number(compiled['compiled_over_eager'])} x "
        f"the time (paired turns), {same}. Compiling took {compiled['compile_seconds']:.1f} s once, "
        "outside the timings.",
    ]


def _store_lines(store: dict) -> list[str]:
    """What a kept run costs in memory and on disk."""
    return [
        f"{store['runs']} RED runs kept in a run store: {_number(store['per_run_mb'], 4)} MiB per run "
        f"({store['measure']}; resident memory {_number(store['resident_per_run_mb'], 2)} MiB per run), "
        f"{store['run_folder_bytes']:,} bytes on disk per run; a model copy per run would hold "
        f"{_number(store['model_copy_mb'], 1)} MiB."
    ]


def _batched_lines(batched: dict) -> list[str]:
    """Base + 8 runs in one batched generate call against separate calls."""
    return [
        f"Base + {batched['runs']} RED runs, {batched['new_tokens']} new tokens, {batched['threads']} thread(s): "
        f"one batched call × {_number(batched['ratio'])} of the {batched['sequential_calls']} separate calls "
        f"(same tokens: {'yes' if batched['same_tokens'] else 'no'}). Measured: {batched['measured']}."
    ]


def _demo_lines(demos: dict) -> list[str]:
    """Each demo of the Model tab: its seconds end to end (model load beside) and its validation figures."""
    note = f" (the bench's model in place of each preset's: {demos['stand_in']})" if demos["stand_in"] else ""
    lines = [f"Each preset as one click runs it{note}:", "", "| demo | model | seconds | model load (s) | runs |"]
    lines.append("|---|---|---|---|---|")
    for record in demos["presets"].values():
        runs = ", ".join(f"{label} ({steps} steps)" for label, steps in record["steps"].items())
        lines.append(
            f"| {record['name']} | {record['model']} | {_number(record['seconds'], 1)} "
            f"| {_number(record['model_load_seconds'], 1)} | {runs} |"
        )
    return lines


def _memory_lines(memory: dict) -> list[str]:
    """Peak memory (MiB) per method and base precision, with the memory plan's estimate as the last rows."""
    precisions = memory["precisions"]
    names = list(precisions)
    lines = [
        f"Training batch {memory['train']}, generation {memory['generate']}, {memory['compute_dtype']} compute; "
        f"{memory['measure']}.",
        "",
        "| peak MiB | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    skipped = [f"{name}: {record['skipped']}" for name, record in precisions.items() if "skipped" in record]
    measured = {name: record for name, record in precisions.items() if "skipped" not in record}
    rows = [("weights", lambda record: record["weights"])]
    methods = dict.fromkeys(method for record in measured.values() for method in record["training"])
    rows += [(f"training: {method}", lambda record, m=method: record["training"].get(m)) for method in methods]
    generators = dict.fromkeys(method for record in measured.values() for method in record["generation"])
    rows += [(f"generation: {method}", lambda record, m=method: record["generation"].get(m)) for method in generators]
    for label, key in (("weights", "weights"), ("RED training", "red_training"), ("generation", "generation")):
        rows.append((f"plan: {label}", lambda record, k=key: record["estimate"].get(k)))
    for label, value in rows:
        cells = [_megabytes(value(precisions[name])) if name in measured else "–" for name in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + ([""] + [f"Skipped {line}." for line in skipped] if skipped else [])
