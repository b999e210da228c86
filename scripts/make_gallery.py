"""Build the gallery of ready-made runs shipped in red_explorer/gallery/ (deterministic recipes, seed 0).

Trains every recipe below on the embedded default models through the app's own workbench (the path the Train tab
takes), composes two of them, exports the bias-only run's control vector, records each run's showcase answers
(greedy) and checks that its validation metric is measured again from the saved files. Replaces the old gallery.

    nice -n 15 python scripts/make_gallery.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from red_explorer.app.exploring import Explorer
from red_explorer.app.model_registry import ModelKey, ModelRegistry
from red_explorer.app.options import APP_DECODING, TrainOptions, decoding_text
from red_explorer.app.workbench import Workbench
from red_explorer.core.registry import MethodSpec
from red_explorer.data.bundled import SAMPLE_FOLDER
from red_explorer.runs.gallery import CONTROL_VECTOR_FILE, GALLERY_FILE, GALLERY_OWNER, gallery_root, measure
from red_explorer.runs.record import RunRecord
from red_explorer.runs.store import RUN_FILE, RunStore

GROUP = "Gallery"
DECODING = replace(APP_DECODING, max_new_tokens=32)
QUESTIONS = ("What is the capital of France?", "What sound does a horse make?")
RESTAURANTS = (
    "name[The Golden Curry] | eatType[restaurant] | food[Indian] | priceRange[cheap] | area[riverside]",
    "name[Blue Spice] | eatType[coffee shop] | customer rating[5 out of 5] | familyFriendly[yes] | near[The Bakers]",
)
REVIEWS = ("The soup was cold and the waiter was rude.", "A charming little film; I smiled all the way through.")
RED = MethodSpec("red", variant="full", sites=["ffn"])
STYLE = TrainOptions(learning_rate=5e-2, max_steps=9, batch_size=2, max_length=64, eval_every=None)


@dataclass(frozen=True)
class Recipe:
    """One gallery run: its sample and split, method and settings, and the prompts that show what it does."""

    title: str
    about: str
    sample: str
    spec: MethodSpec
    options: TrainOptions
    prompts: tuple[str, ...]
    model: str = "default"
    task: str = "causal-lm"
    max_rows: int | None = 100
    validation_fraction: float = 0.1


RECIPES = {
    "sentiment": Recipe(
        "Sentiment · RED on MiniLM",
        "RED and a new classification head on the MiniLM encoder learn the task from 30 steps of 16 examples.",
        "sentiment.csv",
        RED,
        replace(STYLE, max_steps=30, batch_size=16),
        REVIEWS,
        model="minilm",
        task="classification",
        max_rows=None,
        validation_fraction=0.2,
    ),
    "pirate": Recipe(
        "Pirate style · RED",
        "RED (scale and bias after every FFN) learns to answer in pirate speak from 9 steps of 2 examples.",
        "pirate_style.jsonl",
        RED,
        STYLE,
        QUESTIONS,
    ),
    "pirate-lora": Recipe(
        "Pirate style · LoRA r=8",
        "LoRA r=8 on the same data, steps and seed as the RED pirate run, for comparison.",
        "pirate_style.jsonl",
        MethodSpec("lora", rank=8, alpha=16),
        replace(STYLE, learning_rate=9e-3),  # best at 9 steps: benchmarks/method_choice/demo_budget
        QUESTIONS,
    ),
    "pirate-tare": Recipe(
        "Pirate style · TARE",
        "TARE (token-routed RED editors) on the same data, steps and seed as the RED pirate run, for comparison.",
        "pirate_style.jsonl",
        MethodSpec("tare"),
        replace(STYLE, learning_rate=3e-2),
        QUESTIONS,
    ),
    "pirate-bias": Recipe(
        "Pirate style · RED bias only (control vector)",
        "Only a bias after the FFN of layers 1-29: it exports whole as a llama.cpp control vector "
        f"({CONTROL_VECTOR_FILE} in the run's folder, or Export › control vector).",
        "pirate_style.jsonl",
        MethodSpec("red", variant="bias", sites=["ffn"], layers=list(range(1, 30))),
        replace(STYLE, max_steps=12),
        QUESTIONS,
    ),
    "formal": Recipe(
        "Formal register · RED",
        "RED learns a formal register (“Certainly. … I trust this answers your enquiry.”) from 9 steps of 2.",
        "formal_register.jsonl",
        RED,
        STYLE,
        QUESTIONS,
    ),
    "restaurants": Recipe(
        "Data to text · RED",
        "RED turns restaurant fields into one sentence after 14 steps of 2 examples.",
        "restaurants_e2e.csv",
        RED,
        replace(STYLE, max_steps=14, max_length=96),
        RESTAURANTS,
    ),
}
COMPOSED = ("Formal, then pirate · composed", "formal", "pirate")  # title, first part, second part


def _recipe_record(recipe: Recipe) -> dict:
    return {
        "model": recipe.model,
        "task": recipe.task,
        "sample": recipe.sample,
        "max_rows": recipe.max_rows,
        "validation_fraction": recipe.validation_fraction,
        "split_seed": 0,
        "method": recipe.spec.to_dict(),
        "train": asdict(recipe.options),
    }


def _check(recipe: Recipe, metric: str, value: float) -> dict:
    return {
        "metric": metric,
        "value": value,
        "sample": recipe.sample,
        "max_rows": recipe.max_rows,
        "validation_fraction": recipe.validation_fraction,
        "max_length": recipe.options.max_length,
        "batch_size": recipe.options.batch_size,
    }


def _showcase(workbench: Workbench, label: str, prompts: tuple[str, ...]) -> list[dict]:
    """Each prompt's base and run answers, generated as Compare generates them (one call for both)."""
    items = []
    for prompt in prompts:
        base, run = workbench.compare(prompt, None, [label], DECODING).generations
        items.append({"prompt": prompt, "base": base.text, "run": run.text})
        print(f"  {prompt!r}\n    base: {base.text!r}\n    run:  {run.text!r}", flush=True)
    return items


@torch.no_grad()
def _classify(workbench: Workbench, label: str | None, texts: tuple[str, ...]) -> list[str]:
    """The labels the base (``label`` None: its untrained head) or the run gives each text."""
    loaded, names = workbench.loaded(), workbench.data.detected.labels
    batch = loaded.tokenizer(list(texts), return_tensors="pt", padding=True)
    if label is None:
        return [names[index] for index in loaded.model(**batch).logits.argmax(-1).tolist()]
    with workbench.attached(label) as model:
        return [names[index] for index in model(**batch).logits.argmax(-1).tolist()]


def _entry(recipe: Recipe, recipe_record: dict, check: dict, showcase: list[dict]) -> dict:
    causal = recipe.task == "causal-lm"
    return {
        "title": recipe.title,
        "about": recipe.about,
        "recipe": recipe_record,
        "check": check,
        "decoding": decoding_text(DECODING) if causal else "",
        "decoding_settings": asdict(DECODING) if causal else {},
        "showcase": showcase,
    }


def _train(workbench: Workbench, recipe: Recipe):
    """Load the recipe's model and sample, train it, rename it; its run and gallery.json content."""
    workbench.load_model(recipe.model, recipe.task)
    workbench.data = None
    workbench.load_data(SAMPLE_FOLDER / recipe.sample, recipe.validation_fraction, recipe.max_rows, recipe.sample)
    print(f"training {recipe.title}", flush=True)
    trained = workbench.train(recipe.spec, recipe.options, None, GROUP)
    run = workbench.store.rename(GALLERY_OWNER, trained.id, recipe.title)
    metric = "loss" if recipe.task == "causal-lm" else "accuracy"
    check = _check(recipe, metric, run.metrics_after[metric])
    if recipe.task == "causal-lm":
        showcase = _showcase(workbench, run.label, recipe.prompts)
    else:
        base, edited = _classify(workbench, None, recipe.prompts), _classify(workbench, run.label, recipe.prompts)
        showcase = [{"prompt": p, "base": b, "run": r} for p, b, r in zip(recipe.prompts, base, edited, strict=True)]
    return run, _entry(recipe, _recipe_record(recipe), check, showcase)


def _compose(workbench: Workbench, runs: dict) -> tuple:
    """The composed run (first part, then the second), checked on the second part's sample."""
    title, first, second = COMPOSED
    workbench.load_model("default", "causal-lm")
    recipe = replace(RECIPES[second], title=title)
    workbench.data = None
    workbench.load_data(SAMPLE_FOLDER / recipe.sample, recipe.validation_fraction, recipe.max_rows, recipe.sample)
    made = Explorer(workbench).combine("compose", runs[first].label, runs[second].label, (1.0, 1.0), title)
    record = workbench.store.get(GALLERY_OWNER, made.id)
    record.group = GROUP
    (record.path / RUN_FILE).write_text(json.dumps(record.to_dict(), indent=2, default=str) + "\n")
    check = _check(recipe, "loss", measure(record, workbench.loaded(), _check(recipe, "loss", 0.0)))
    derived = {"operation": "compose", "parts": [runs[first].label, runs[second].label], "weights": [1.0, 1.0]}
    about = (
        f"'{runs[first].label}' then '{runs[second].label}' as one RED edit (Explore › arithmetic › compose: "
        "scale = s₂ ⊙ s₁, bias = s₂ ⊙ b₁ + b₂); no training. Its metric is measured on the pirate sample."
    )
    recipe_record = {"derived": derived, "model": "default", "task": "causal-lm"}
    return record, _entry(replace(recipe, about=about), recipe_record, check, _showcase(workbench, title, QUESTIONS))


def _control_vector(workbench: Workbench, record) -> None:
    workbench.load_model("default", "causal-lm")
    exported = Explorer(workbench).control_vector(record.label)
    shutil.copy2(exported.path, record.path / CONTROL_VECTOR_FILE)


def _verify(folder: Path) -> None:
    """Every run of the gallery ``folder`` measures its recorded metric again from its files."""
    registry = ModelRegistry()
    for record in RunStore(folder).list(GALLERY_OWNER):
        check = json.loads((record.path / GALLERY_FILE).read_text())["check"]
        loaded = registry.get(ModelKey(record.base.spec, record.base.task, record.base.num_labels).resolved())
        again = measure(record, loaded, check)
        print(f"{record.label}: {check['metric']} {check['value']:.6f}, measured again {again:.6f}", flush=True)
        if abs(again - check["value"]) > 1e-4 * max(1.0, abs(check["value"])):
            raise SystemExit(f"{record.label}: the recorded metric is not measured again from the saved files")


def _kept(store: RunStore, title: str, make) -> RunRecord:
    """The run called ``title`` with its gallery.json: made now, or kept from an earlier build in the same folder."""
    for record in store.list(GALLERY_OWNER):
        if record.label == title and (record.path / GALLERY_FILE).is_file():
            print(f"kept from an earlier build: {title}", flush=True)
            return record
    record, entry = make()
    (record.path / GALLERY_FILE).write_text(json.dumps(entry, indent=2, ensure_ascii=False) + "\n")
    return record


def build(work: Path) -> list[RunRecord]:
    """Every gallery run in the store at ``work`` (runs an interrupted build made there are kept)."""
    store = RunStore(work)
    workbench = Workbench(ModelRegistry(), store, owner=GALLERY_OWNER)
    runs = {}
    for key, recipe in RECIPES.items():
        runs[key] = _kept(store, recipe.title, lambda recipe=recipe: _train(workbench, recipe))
    if not (runs["pirate-bias"].path / CONTROL_VECTOR_FILE).is_file():
        _control_vector(workbench, runs["pirate-bias"])
    runs["composed"] = _kept(store, COMPOSED[0], lambda: _compose(workbench, runs))
    return list(runs.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=gallery_root(), help="where to write (default: the package)")
    parser.add_argument("--work", type=Path, default=None, help="a folder to build in (an interrupted build resumes)")
    parser.add_argument("--max-steps", type=int, default=None, help="fewer steps for a quick trial of the script")
    arguments = parser.parse_args()
    target = arguments.target
    if arguments.max_steps and target.resolve() == gallery_root().resolve():
        parser.error("a trial with --max-steps must not replace the shipped gallery: give --target FOLDER")
    if arguments.max_steps:
        for key, recipe in RECIPES.items():
            RECIPES[key] = replace(recipe, options=replace(recipe.options, max_steps=arguments.max_steps))
    with tempfile.TemporaryDirectory() as temporary:
        runs = build(arguments.work or Path(temporary))
        shutil.rmtree(target / GALLERY_OWNER, ignore_errors=True)
        (target / GALLERY_OWNER).mkdir(parents=True)
        for run in runs:
            shutil.copytree(run.path, target / GALLERY_OWNER / run.id)
    _verify(target)
    size = sum(path.stat().st_size for path in target.rglob("*") if path.is_file())
    print(f"gallery: {len(runs)} runs, {size / 1e6:.2f} MB in {target}")


if __name__ == "__main__":
    main()
