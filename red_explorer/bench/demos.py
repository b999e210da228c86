"""Benchmark of the one-minute demos: each preset end to end on this machine (sample, training, first generation)."""

from __future__ import annotations

import shutil
from pathlib import Path

from red_explorer.app.demo_presets import PRESETS, DemoOutcome, run_preset
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.workbench import Workbench
from red_explorer.bench.setup import BenchModel
from red_explorer.runs.store import RunStore

OWNER = "bench"
QUICK_STEPS = 2


def _stand_in_folder(bench: BenchModel, folder: Path) -> str:
    """The bench's model and tokenizer saved as a folder the app loads (it stands in for every preset's model)."""
    bench.model.save_pretrained(folder)
    bench.tokenizer.save_pretrained(folder)
    return str(folder)


def _record(outcome: DemoOutcome, model: str, workbench: Workbench) -> dict:
    """One preset's figures: seconds end to end (the model load beside it), stages, validation metrics, first texts."""
    seconds = {stage: value for stage, value in outcome.seconds.items() if stage != "load model"}
    comparison = outcome.generation
    return {
        "name": outcome.preset.name,
        "model": model,
        "task": outcome.preset.task,
        "steps": {label: len(workbench.run(label).result.train_loss) for label in outcome.labels},
        "seconds": sum(seconds.values()),
        "model_load_seconds": outcome.seconds["load model"],
        "stages": outcome.seconds,
        "metrics": {label: {"before": before, "after": after} for label, (before, after) in outcome.metrics.items()},
        "first_generation": {g.method: g.text for g in comparison.generations} if comparison is not None else None,
    }


def bench_demo_presets(out: Path, stand_in: BenchModel | None = None, max_steps: int | None = None) -> dict:
    """Every preset of ``app.demo_presets`` in a fresh workbench with its own run store under ``out``.

    A preset's figure is the wall seconds of loading its sample, training its methods and the first
    generation (causal-lm: base + runs on its prompt), as one click runs them; loading the model is
    reported beside it (the app loads the default model when it starts). With ``stand_in`` (the CI
    smoke run) the bench's model replaces every preset's model and ``max_steps`` their steps.
    ``demo_preset_max_seconds`` is the slowest preset.
    """
    folder = out / "demos"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    model = _stand_in_folder(stand_in, folder / "model") if stand_in is not None else None
    presets = {}
    for key, preset in PRESETS.items():
        workbench = Workbench(ModelRegistry(), RunStore(folder / "runs"), owner=OWNER)
        try:
            outcome = run_preset(workbench, preset, model=model, max_steps=max_steps)
            presets[key] = _record(outcome, model or preset.model, workbench)
        finally:
            workbench.close()
    return {
        "presets": presets,
        "stand_in": stand_in.name if stand_in is not None else None,
        "demo_preset_max_seconds": max(record["seconds"] for record in presets.values()),
    }
