"""Checks of what users run on top of the methods: batched Compare, and the app's workbench end to end."""

from __future__ import annotations

from pathlib import Path

from red_explorer.check.report import CheckReport
from red_explorer.data.bundled import TRAINING_SAMPLE
from red_explorer.engine.batched_compare import SavedRun, compare_batched
from red_explorer.engine.generation import DecodingSettings, chat_prompt
from red_explorer.models.loading import LoadedModel

PROMPTS = ("name[The Eagle], food[Italian], area[riverside]", "name[Blue Spice], priceRange[cheap]")
OWNER = "check"


def check_compare(report: CheckReport, loaded: LoadedModel, runs: list[SavedRun], new_tokens: int) -> None:
    """The base and every run in as few generate calls as possible = one call each, token for token (greedy)."""

    def compare() -> tuple[bool, str, str]:
        prompts = [chat_prompt(loaded.tokenizer, prompt) for prompt in PROMPTS]
        settings = DecodingSettings(max_new_tokens=new_tokens)
        batched = compare_batched(loaded.model, loaded.tokenizer, prompts, runs, settings)
        separate = compare_batched(loaded.model, loaded.tokenizer, prompts, runs, settings, batch=False)
        same = sum(one == other for one, other in zip(batched.token_ids, separate.token_ids, strict=True))
        total = len(separate.token_ids)
        calls = f"{len(batched.calls)} calls instead of {len(separate.calls)}"
        return same == total, f"{same}/{total} generations identical ({calls})", "all identical"

    report.run(f"Compare: batched = separate calls ({len(runs)} runs)", compare)


def check_app(report: CheckReport, model_folder: str, device: str, dtype: str, steps: int, out: Path) -> None:
    """The workbench the app's handlers call: load → data → train → compare → explore, on this device."""
    from red_explorer.app.exploring import Explorer
    from red_explorer.app.model_registry import ModelRegistry
    from red_explorer.app.options import TrainOptions
    from red_explorer.app.workbench import Workbench
    from red_explorer.core.registry import MethodSpec
    from red_explorer.runs.store import RunStore

    workbench = Workbench(ModelRegistry(), RunStore(out / "app_runs"), owner=OWNER)
    kept: dict = {}

    def load_and_train() -> tuple[bool, str, str]:
        info = workbench.load_model(model_folder, "causal-lm", device, dtype)
        workbench.load_data(TRAINING_SAMPLE, 0.1, max_rows=200)
        options = TrainOptions(max_steps=steps, max_length=64, batch_size=8, eval_every=None)
        kept["run"] = run = workbench.train(MethodSpec("red"), options)
        loaded = workbench.loaded()
        where = f"{loaded.device.type}/{str(loaded.dtype)[6:]}"
        before, after = run.result.metrics_before["loss"], run.result.metrics_after["loss"]
        value = f"{info.architecture} on {where}; loss {before:.4f} → {after:.4f}"
        return loaded.device.type == device.split(":")[0] and after < before, value, f"on {device}, loss falls"

    def compare_and_explore() -> tuple[bool, str, str]:
        label = kept["run"].label
        comparison = workbench.compare(PROMPTS[0], labels=[label], settings=DecodingSettings(max_new_tokens=8))
        at_zero = Explorer(workbench).generate_at(label, 0.0, PROMPTS[0], max_new_tokens=8)
        texts = {generation.method: generation.text for generation in comparison.generations}
        same = at_zero.edited.text == at_zero.base.text == texts["base"]
        value = f"{len(comparison.generations)} generations; α = 0 gives the base's text: {same}"
        return same and len(comparison.generations) == 2, value, "base + run; α = 0 = base"

    try:
        if report.run("app: load → train RED", load_and_train).passed:
            report.run("app: compare → explore", compare_and_explore)
    finally:
        workbench.close()
