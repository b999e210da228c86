"""The cost benchmark of issue #5: RED vs the floor, LoRA, TARE and full fine-tuning, in one process.

``run_benchmark`` measures, on one model and one batch, each figure as the median of interleaved
repetitions after warm-up: (1) a training step per method against the floor, with peak memory;
(2) generation tokens/s attached and merged; (3) eight distinct edits in one batch vs one shared edit;
(4) switching between saved edits and their file sizes; (5) the engine's training path vs a raw loop;
(6) runs as edits: memory per kept run, and base + 8 runs in one batched generate call; (7) each one-minute
demo of the app end to end; (8) peak training and generation memory per method on a bf16, 8-bit and 4-bit
base, beside the memory plan's estimate; (9) RED's training step compiled (CUDA graphs on a GPU) vs eager, and
RED-attached generation with a static KV cache and a compiled forward vs eager.
It writes ``bench.json`` and ``bench.md`` into ``out``.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from red_explorer.bench.budget import TimeBudget
from red_explorer.bench.compiled import bench_compiled_generation, bench_compiled_step
from red_explorer.bench.memory import bench_memory
from red_explorer.bench.report import markdown, verdicts
from red_explorer.bench.serve import bench_generation, bench_many_edits
from red_explorer.bench.setup import BenchModel, choose_shape, load_bench_model
from red_explorer.bench.store import bench_batched_compare, bench_store_memory
from red_explorer.bench.swap import bench_swap_and_sizes
from red_explorer.bench.timing import Timings
from red_explorer.bench.train import bench_engine, bench_training_steps

HEADLINE_KEYS = (
    "red_step_over_floor",
    "red_step_over_lora",
    "merged_generate_over_base",
    "attached_generate_over_base",
    "many_edits_over_one_edit",
    "red_swap_ms",
    "engine_over_raw_throughput",
    "tare_step_over_floor",
    "tare_generate_over_base",
    "store_memory_per_run_mb",
    "compare_batched_over_sequential",
    "demo_preset_max_seconds",
    "red_compiled_step_over_eager",
    "red_compiled_step_over_floor",
    "red_compiled_generate_over_eager",
)


def device_name(device: torch.device) -> str:
    """The CPU model (from /proc/cpuinfo) and thread count, or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {torch.get_num_threads()} torch threads"


def _versions() -> dict[str, str]:
    import peft
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def _headline(training: Timings, generation: Timings, swap: dict, found: dict) -> dict:
    """The headline ratios of bench.json: paired per-round time ratios (> 1 is slower), except the engine's.

    ``found`` holds the optional sections; a skipped one leaves its figures None ("not measured").
    """
    many, engine = found["many_edits"], found["engine"]
    compiled, compiled_generation = found["compiled_step"], found["compiled_generation"]
    return {
        "red_step_over_floor": training.ratio("red_ffn", "floor"),
        "red_step_over_lora": training.ratio("red_ffn", "lora_r8"),
        "red_ffn_attn_step_over_floor": training.ratio("red_ffn_attn", "floor"),
        "lora_step_over_floor": training.ratio("lora_r8", "floor"),
        "tare_step_over_floor": training.ratio("tare", "floor"),
        "full_step_over_floor": training.ratio("full", "floor"),
        "merged_generate_over_base": generation.ratio("red_merged", "base"),
        "attached_generate_over_base": generation.ratio("red_attached", "base"),
        "lora_attached_generate_over_base": generation.ratio("lora_attached", "base"),
        "lora_merged_generate_over_base": generation.ratio("lora_merged", "base"),
        "tare_generate_over_base": generation.ratio("tare_attached", "base"),
        "many_edits_over_one_edit": many.get("generate_ratio"),
        "many_edits_forward_over_one_edit": many.get("forward_ratio"),
        "red_swap_ms": swap["red_swap_ms"],
        "lora_swap_ms": swap["lora_swap_ms"],
        "engine_over_raw_throughput": engine.get("engine_over_raw_throughput"),
        "store_memory_per_run_mb": found["run_store"].get("per_run_mb"),
        "compare_batched_over_sequential": found["batched_compare"].get("ratio"),
        "demo_preset_max_seconds": found["demos"].get("demo_preset_max_seconds"),
        "red_compiled_step_over_eager": compiled.get("compiled_over_eager"),
        "red_compiled_step_over_floor": compiled.get("compiled_over_floor"),
        "red_compiled_generate_over_eager": compiled_generation.get("compiled_over_eager"),
    }


def _measure(
    bench: BenchModel, quick: bool, out: Path, keep: Callable[[str, object], object], budget: TimeBudget
) -> dict:
    """Every section in turn; ``keep(name, figures)`` saves each as it finishes (a timeout keeps what finished).

    Swapping, training and generation always run; the sections after them start only while ``budget`` has time.
    """
    shape = choose_shape(bench.device, quick, bench.name)
    swap = keep("swap", bench_swap_and_sizes(bench, shape, out))
    training_timings, training = bench_training_steps(bench, shape)
    keep("training", training)
    generation_timings, generation = bench_generation(bench, shape)
    keep("generation", generation)
    optional = {
        "many_edits": lambda: bench_many_edits(bench, shape),
        "engine": lambda: bench_engine(bench, shape),
        "run_store": lambda: bench_store_memory(bench, out),
        "batched_compare": lambda: bench_batched_compare(bench, shape, out, quick),
        "demos": lambda: _demos(bench, quick, out),
        "memory": lambda: bench_memory(bench, shape, out),
        # last: compiling takes tens of seconds each, and a GPU slot that runs out of time keeps every section before it
        "compiled_step": lambda: bench_compiled_step(bench, shape, training["floor"]["median_ms"]),
        "compiled_generation": lambda: bench_compiled_generation(bench, shape),
    }
    found = {name: keep(name, budget.run(name, measure)) for name, measure in optional.items()}
    return {
        "shape": shape.__dict__,
        "batch_shape": {
            "train": [shape.train_batch, shape.train_length],
            "generate": [shape.generate_batch, shape.prompt_length, shape.new_tokens],
        },
        "repetitions": shape.rounds * shape.repeats,
        "memory_measure": _memory_note(training_timings.memory_measure),
        "time_budget_seconds": budget.seconds,
        "swap": swap,
        "training": training,
        "generation": generation,
        **found,
        **_headline(training_timings, generation_timings, swap, found),
    }


def _demos(bench: BenchModel, quick: bool, out: Path) -> dict:
    """The app's one-minute demos end to end: their own models with ``--model default``, else the bench's model."""
    try:  # the app layer needs the data stack (datasets, pandas), absent on a bare GPU machine
        from red_explorer.bench.demos import QUICK_STEPS, bench_demo_presets
    except ImportError as error:
        return {"skipped": f"the app layer cannot be imported here ({error})"}
    stand_in = None if bench.name == "default" else bench
    return bench_demo_presets(out, stand_in, QUICK_STEPS if quick else None)


def _memory_note(measure: str) -> str:
    if measure == "estimate":
        return (
            "estimated (no allocator statistics on CPU): weights + gradients and AdamW moments of the trainable "
            "parameters + the tensors autograd saved for backward in one step"
        )
    return "measured: torch.cuda.max_memory_allocated over the variant's steps"


def _keeper(result: dict, path: Path) -> Callable[[str, object], object]:
    """Save ``result`` with each finished section to ``path`` (marked "complete": false until the end)."""

    def keep(name: str, figures):
        result[name] = figures
        path.write_text(json.dumps(result | {"complete": False}, indent=2, default=str) + "\n")
        return figures

    return keep


def run_benchmark(
    model: str,
    device: str = "auto",
    dtype: str = "auto",
    quick: bool = False,
    out: str = "bench",
    quantize: str | None = None,
    seconds: float | None = None,
) -> dict:
    """Run the benchmark on ``model`` ('default', a folder, 'tiny', 'random:smollm2', 'random:llama-7b').

    Returns the content of ``out/bench.json`` (with a "summary" key) and writes ``out/bench.md``. ``seconds``
    bounds the run: the sections after generation that cannot start in time are marked skipped.
    """
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    budget = TimeBudget(seconds)  # counted from before loading: what the user waits
    bench = load_bench_model(model, device=device, dtype=dtype, quantize=quantize)
    result = {
        "model": bench.name,
        "model_description": bench.description,
        "device": str(bench.device),
        "device_name": device_name(bench.device),
        "dtype": str(bench.dtype).removeprefix("torch."),
        "versions": _versions(),
        "quick": quick,
    }
    result |= _measure(bench, quick, directory, _keeper(result, directory / "bench.json"), budget)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["process_peak_rss_bytes"] = int(rss if sys.platform == "darwin" else rss * 1024)
    result["complete"] = True
    result["targets"] = verdicts(result)
    result["summary"] = {key: result.get(key) for key in HEADLINE_KEYS} | {
        "model": bench.name,
        "device": result["device_name"],
        "targets_met": sum(bool(verdict["met"]) for verdict in result["targets"]),
        "targets": len(result["targets"]),
        "out": str(directory),
    }
    (directory / "bench.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (directory / "bench.md").write_text(markdown(result))
    return result
