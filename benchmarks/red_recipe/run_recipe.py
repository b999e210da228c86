"""RED recipe candidates and budget curves, seeds repeated; one command, resumable (see README.md here).

    OMP_NUM_THREADS=1 python benchmarks/red_recipe/run_recipe.py --phase all

Writes cells-TASK.json after every run (a stopped run keeps what finished; the next call resumes) and results.md /
results.json (mean ± std over seeds) from whatever has finished.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from red_explorer.choice.forgetting import general_batches, general_paragraphs
from red_explorer.choice.recipe import Candidate, RecipeTask, cell_key, measure_cell, run_cells, summarise, winners
from red_explorer.choice.recipe_card import budget_table, comparison_table
from red_explorer.data.prepared import prepare_data
from red_explorer.data.public_tasks import write_public_task
from red_explorer.data.tables import DataConfig
from red_explorer.models.loading import load_model

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parents[1] / "red_explorer" / "samples"
BASELINE = "RED today"
# Each method's best rate in benchmarks/method_choice (pirate_style for SmolLM2, rotten_tomatoes for MiniLM).
LM_RATES = {"red": 3e-2, "lora": 9e-3, "ia3": 2.7e-2}
TASKS = {
    "pirate": RecipeTask("pirate", LM_RATES, steps=30, batch_size=8),
    "restaurants": RecipeTask("restaurants", LM_RATES, steps=30, batch_size=8),
    "rotten_tomatoes": RecipeTask("rotten_tomatoes", {"red": 3e-2, "lora": 2.7e-3, "ia3": 2.7e-2}, 60, 16),
}
BUDGETS = {"pirate": [30, 100], "restaurants": [30, 100], "rotten_tomatoes": [60, 200]}
CANDIDATES = [
    Candidate(BASELINE, note="linear decay after 6 % warm-up (the paper's), no weight decay, clipping at 1, FFN"),
    Candidate("cosine 10% warm-up", train={"scheduler": "cosine", "warmup_ratio": 0.1}, note="paper's Llama runs"),
    Candidate("constant rate no warm-up", train={"scheduler": "constant", "warmup_ratio": 0.0}),
    Candidate("scale lr x1/3", train={"lr_factors": {"red_scale": 1 / 3}}, note="bias keeps the full rate"),
    Candidate(
        "decay 0.1 toward identity",
        train={"weight_decay": 0.1, "decay_toward_start": True},
        note="scale = 1 + s with s decayed (AdamW's decay of s)",
    ),
    Candidate("decay 0.1 toward 0", train={"weight_decay": 0.1}, note="AdamW's decay on scale itself"),
    Candidate("FFN + attention", options={"sites": ["ffn", "attn"]}, note="twice the vectors"),
    Candidate("no clipping", train={"max_grad_norm": 0.0}),
    Candidate(
        "head lr x1/10",
        train={"lr_factors": {"classifier.weight": 0.1, "classifier.bias": 0.1}},
        note="classification only: the new head at a tenth of RED's rate",
        tasks=("rotten_tomatoes",),
    ),
    Candidate(
        "rate 1e-2",
        train={"learning_rate": 1e-2},
        note="classification only: a third of the rate measured best with one seed",
        tasks=("rotten_tomatoes",),
    ),
    Candidate(
        "rate 1e-2 head x3",
        train={"learning_rate": 1e-2, "lr_factors": {"classifier.weight": 3.0, "classifier.bias": 3.0}},
        note="classification only: the vectors at 1e-2, the new head at 3e-2",
        tasks=("rotten_tomatoes",),
    ),
]
REFERENCES = [
    Candidate("LoRA r=8", method="lora"),
    Candidate("IA3", method="ia3", note="FFN scale only, PEFT"),
    Candidate("LoRA r=1", method="lora", options={"rank": 1, "alpha": 2}, note="alpha/r as r=8's"),
    *(
        Candidate(
            f"LoRA r=1 at {rate:g}",
            method="lora",
            options={"rank": 1, "alpha": 2},
            train={"learning_rate": rate},
            note="LoRA r=1 at its own rate, for the equal-parameter comparison",
            tasks=("rotten_tomatoes", "pirate"),
        )
        for rate in (9e-3, 2.7e-2)
    ),
]


def load_task(name: str, scratch: Path):
    """(loaded model, prepared data, general-text batches or None) for a task."""
    if name == "rotten_tomatoes":
        train, validation = write_public_task(name, scratch / name, train_rows=1000, validation_rows=400, seed=0)
        loaded = load_model("minilm", task="classification", num_labels=2, device="cpu", dtype="float32")
        data = prepare_data(train, loaded.tokenizer, DataConfig(task="classification", max_length=64), validation)
        return loaded, data, None
    sample = {"pirate": "pirate_style.jsonl", "restaurants": "restaurants_e2e.csv"}[name]
    loaded = load_model("default", device="cpu", dtype="float32")
    data = prepare_data(SAMPLES / sample, loaded.tokenizer, DataConfig(max_length=256))
    general = general_batches(loaded.tokenizer, general_paragraphs(), 128, 8)
    return loaded, data, general


def plan(phase: str, seeds: list[int], tasks: list[str], candidates: list[str] | None) -> list:
    """The cells of a phase: the base-budget comparison (candidates and references), then the longer budgets
    (today's RED and LoRA unless ``candidates`` names others)."""
    known = {candidate.name: candidate for candidate in CANDIDATES + REFERENCES}
    unknown = sorted(set(candidates or ()) - set(known))
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}; known: {', '.join(known)}")
    chosen = [known[name] for name in candidates] if candidates else list(known.values())
    cells = []
    if phase in ("compare", "all"):
        for seed in seeds:
            for task in (TASKS[name] for name in tasks):
                cells += [
                    (task, candidate, task.steps, seed) for candidate in chosen if candidate.applies_to(task.name)
                ]
    if phase in ("budget", "all"):
        for seed in seeds:
            for task in (TASKS[name] for name in tasks):
                for steps in BUDGETS[task.name][1:]:
                    curve = chosen if candidates else [CANDIDATES[0], REFERENCES[0]]
                    cells += [(task, candidate, steps, seed) for candidate in curve]
    return cells


def report(results: dict, out: Path) -> None:
    """results.md and results.json from the finished cells."""
    summaries = summarise(results)
    steps = {name: task.steps for name, task in TASKS.items()}
    names = [candidate.name for candidate in CANDIDATES + REFERENCES]
    won = winners([s for s in summaries if s.candidate in names[: len(CANDIDATES)]], BASELINE, steps)
    notes = "\n".join(f"- {c.name}: {c.note}" for c in CANDIDATES + REFERENCES if c.note)
    text = (
        "# RED recipe comparison and budget curves\n\nMean ± sample std over seeds (count in brackets); "
        "validation loss (lower is better) for pirate and restaurants, accuracy for rotten_tomatoes; **better** / "
        f"worse: beyond two standard errors of the difference from {BASELINE!r}; forgets: rise of the general-text "
        f"loss.\n\n{comparison_table(summaries, BASELINE, steps, names)}\n\n{notes}\n\n"
        f"Candidates that beat {BASELINE!r} on every task: {', '.join(won) or 'none'}.\n\n"
        f"## Budget curves\n\n{budget_table(summaries, [BASELINE, 'LoRA r=8'])}\n"
    )
    (out / "results.md").write_text(text)
    chosen = next(c for c in CANDIDATES if c.name == (won[0] if won else BASELINE))
    recipe = {
        "name": chosen.name,
        "train": chosen.train,
        "options": chosen.options,
        "rate": TASKS["pirate"].rates["red"],
    }
    payload = {"baseline": BASELINE, "winners": won, "default_recipe": recipe}
    payload["summaries"] = [s.to_dict() for s in summaries]
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["compare", "budget", "all"], default="all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of: {', '.join(TASKS)}")
    parser.add_argument("--candidates", help="comma-separated names (default: every candidate and reference)")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--part", default="", help="a name for this process's cells file, to run parts in parallel")
    parser.add_argument("--report-only", action="store_true", help="rewrite results.md/json from cells.json")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    out = Path(args.out)
    contexts: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory() as scratch:

        def run_cell(task, candidate, config):
            if task.name not in contexts:
                contexts.clear()  # one model in memory at a time
                contexts[task.name] = load_task(task.name, Path(scratch))
            loaded, data, general = contexts[task.name]
            return measure_cell(loaded, data, candidate, config, general)

        def log(line: str) -> None:  # after each cell: its line, and the tables of everything finished
            print(line, flush=True)
            report(all_cells(out), out)

        tasks = args.tasks.split(",")
        chosen = args.candidates.split(",") if args.candidates else None
        seeds = [int(seed) for seed in args.seeds.split(",")]
        cells = [] if args.report_only else plan(args.phase, seeds, tasks, chosen)
        done = set(all_cells(out)["cells"])  # finished by any process
        cells = [cell for cell in cells if cell_key(cell[0].name, cell[1].name, *cell[2:]) not in done]
        for name in tasks:  # a file per task (and part): parts can run in separate processes
            path = out / f"cells-{name}{'-' + args.part if args.part else ''}.json"
            run_cells([cell for cell in cells if cell[0].name == name], path, run_cell, log)
    report(all_cells(out), out)


def all_cells(out: Path) -> dict:
    cells = {}
    for path in sorted(out.glob("cells-*.json")):
        cells |= json.loads(path.read_text())["cells"]
    return {"cells": cells}


if __name__ == "__main__":
    main()
