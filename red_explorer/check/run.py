"""The whole check on one device, offline: a random-weight model, four methods, Compare, the app, the bench."""

from __future__ import annotations

import shutil
import tempfile
from functools import partial
from pathlib import Path

import torch
import transformers

from red_explorer.bench.budget import TimeBudget
from red_explorer.bench.setup import RANDOM_SHAPES, load_bench_model
from red_explorer.check.flows import check_app, check_compare
from red_explorer.check.methods import CHECKED_METHODS, check_method
from red_explorer.check.report import DEFAULT_MINUTES, DEFAULT_STEPS, CheckReport
from red_explorer.core.registry import MethodSpec
from red_explorer.data.bundled import TRAINING_SAMPLE
from red_explorer.data.prepared import prepare_data
from red_explorer.data.tables import DataConfig
from red_explorer.engine.batched_compare import SavedRun
from red_explorer.models.loading import DTYPES, LoadedModel, load_model, resolve_device

DATA = DataConfig(task="causal-lm", max_length=64, max_rows=200)  # 180 training rows of the bundled sample
COMPARE_TOKENS = 16


def default_model(device: torch.device) -> str:
    """A SmolLM2-shaped random model on a GPU, a tiny one elsewhere (both built here, no download)."""
    return "random:smollm2" if device.type == "cuda" else "tiny"


def _model_folder(name: str, device: str, dtype: str, scratch: Path) -> str:
    """A folder the loader (and the app) reads: a random model saved into ``scratch``, or ``name`` itself."""
    if name not in RANDOM_SHAPES and not name.startswith("random:"):
        return name
    bench = load_bench_model(name, device=device, dtype=dtype)
    folder = scratch / "model"
    bench.model.save_pretrained(folder)
    bench.tokenizer.save_pretrained(folder)
    return str(folder)


def _facts(name: str, loaded: LoadedModel, steps: int) -> dict:
    device = loaded.device
    return {
        "model": name,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(loaded.dtype).removeprefix("torch."),
        "steps": steps,
        "hub_kernels": loaded.hub_kernels,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def run_check(
    device: str = "cuda",
    out: str | Path = "check",
    model: str | None = None,
    dtype: str = "auto",
    steps: int = DEFAULT_STEPS,
    bench: bool | None = None,
    seconds: float = 60 * DEFAULT_MINUTES,
) -> CheckReport:
    """Run every check and write ``out/check.json`` and ``out/check.md`` (rewritten after each check).

    ``bench`` (default: on CUDA) runs the cost benchmark last, into ``out/bench``, each section saved as it
    finishes; it gets what is left of ``seconds`` (counted from the start), so its later sections are skipped
    when the checks before it took long. Returns the report; ``report.passed`` tells whether every check passed.
    """
    budget = TimeBudget(seconds)
    torch_device = resolve_device(device)
    name = model or default_model(torch_device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="red-explorer-check-"))
    try:
        folder = _model_folder(name, device, dtype, scratch)
        loaded = load_model(folder, device=device, dtype=dtype)
        report = CheckReport(out, _facts(name, loaded, steps))
        data = prepare_data(TRAINING_SAMPLE, loaded.tokenizer, DATA)
        runs = []
        for method in CHECKED_METHODS:
            spec = MethodSpec(method)
            if check_method(report, loaded, data, spec, steps, scratch / "runs" / method):
                runs.append(SavedRun(spec.entry.title, scratch / "runs" / method, spec))
        check_compare(report, loaded, runs, COMPARE_TOKENS)
        dtype_name = next(key for key, value in DTYPES.items() if value == loaded.dtype)
        check_app(report, folder, str(loaded.device), dtype_name, steps, scratch)
        if bench if bench is not None else torch_device.type == "cuda":
            report.run(
                "bench: finishes", partial(_bench, name, device, dtype_name, out / "bench", max(0.0, budget.left()))
            )
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _bench(name: str, device: str, dtype: str, out: Path, seconds: float) -> tuple[bool, str, str]:
    from red_explorer.bench.run import run_benchmark

    result = run_benchmark(name, device=device, dtype=dtype, out=str(out), seconds=seconds)
    summary, skipped = result["summary"], [name for name, figures in result.items() if _skipped(figures)]
    value = f"{summary['targets_met']}/{summary['targets']} cost targets met (see {out}/bench.md)"
    if skipped:
        value += f"; skipped: {', '.join(skipped)}"
    return True, value, "finishes (figures are reported, not judged)"


def _skipped(figures: object) -> bool:
    return isinstance(figures, dict) and "skipped" in figures
