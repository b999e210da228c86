"""Worker processes for the run store's cross-process tests (spawned, so they live in an importable module)."""

from __future__ import annotations

from types import SimpleNamespace

from red_explorer.core.registry import MethodSpec
from red_explorer.runs.store import QuotaError, RunStore


def import_runs(root: str, folder: str, count: int, quota_bytes: int | None, start) -> list[str]:
    """Wait for ``start``, then keep ``count`` copies of the edits in ``folder``; 'quota' for each refusal."""
    store = RunStore(root, quota_bytes=quota_bytes)
    names = dict(name="tiny-llama", base_name="tiny-llama")
    loaded = SimpleNamespace(**names, task="causal-lm", dtype="float32", quantize=None)
    start.wait()
    outcomes = []
    for _ in range(count):
        try:
            outcomes.append(store.import_edits("alice", folder, MethodSpec("red"), loaded).label)
        except QuotaError:
            outcomes.append("quota")
    return outcomes
