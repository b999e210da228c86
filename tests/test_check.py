"""`red-explorer check --device cpu` on the tiny random model: every check passes, in float32 and bfloat16."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from red_explorer.check import methods, run
from red_explorer.cli.main import main

ROW_KEYS = {"name", "passed", "value", "tolerance", "seconds", "note"}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_check_passes_on_cpu(tmp_path, one_thread, dtype) -> None:
    out = tmp_path / "check"
    command = ["check", "--device", "cpu", "--model", "tiny", "--dtype", dtype, "--out", str(out)]
    assert main(command) == 0
    report = json.loads((out / "check.json").read_text())
    assert report["passed"] is True and report["dtype"] == dtype and report["hub_kernels"] is False
    rows = {row["name"]: row for row in report["checks"]}
    assert all(set(row) == ROW_KEYS and row["passed"] and row["seconds"] >= 0 for row in rows.values())
    for title in ("RED", "TARE", "LoRA", "IA3"):
        before, after = (float(part) for part in rows[f"{title}: 20 steps lower the loss"]["value"][16:].split(" → "))
        assert after < before, title
        assert rows[f"{title}: switched off = base"]["value"] == "max |Δlogit| 0"
        assert rows[f"{title}: detached = base"]["value"] == "max |Δlogit| 0"
    assert rows["TARE: merged = attached"]["value"].startswith("refused: TARE edits cannot be merged")
    assert rows["Compare: batched = separate calls (4 runs)"]["value"].startswith("10/10 generations identical")
    assert {"app: load → train RED", "app: compare → explore"} <= set(rows)
    assert f"cpu/{dtype}" in rows["app: load → train RED"]["value"]
    assert "bench: finishes" not in rows  # the bench runs by default on CUDA only
    assert "**all checks pass** (23 checks)" in (out / "check.md").read_text()


def test_a_failing_check_fails_the_command(tmp_path, one_thread, monkeypatch, capsys) -> None:
    """A merge that is off by 0.5 in one weight: its row says fail, the others still run, the exit status is 1."""

    right_merge = methods.merge_and_unload

    def wrong_merge(model):
        merged = copy.deepcopy(right_merge(model))
        with torch.no_grad():
            merged.lm_head.weight[0, 0] += 0.5
        return merged

    monkeypatch.setattr(methods, "merge_and_unload", wrong_merge)
    monkeypatch.setattr(run, "CHECKED_METHODS", ("red",))
    out = tmp_path / "check"
    assert main(["check", "--device", "cpu", "--model", "tiny", "--steps", "2", "--out", str(out)]) == 1
    assert "1 of 8 checks failed (RED: merged = attached)" in capsys.readouterr().err
    report = json.loads((out / "check.json").read_text())
    rows = {row["name"]: row for row in report["checks"]}
    assert report["passed"] is False and not rows["RED: merged = attached"]["passed"]
    assert float(rows["RED: merged = attached"]["value"].split()[-1]) > 1e-5
    assert [row["passed"] for row in report["checks"]].count(False) == 1
    assert "| RED: merged = attached | **fail** |" in (out / "check.md").read_text()


def test_check_refuses_bad_steps(capsys) -> None:
    assert main(["check", "--device", "cpu", "--steps", "0"]) == 1
    assert "--steps must be at least 1, got 0" in capsys.readouterr().err


def test_check_refuses_an_unknown_random_model(tmp_path, capsys) -> None:
    assert main(["check", "--device", "cpu", "--model", "random:gpt5", "--out", str(tmp_path)]) == 1
    assert "unknown random model 'random:gpt5'; use one of" in capsys.readouterr().err


def test_the_bench_skips_its_later_sections_past_the_time_budget(tmp_path, one_thread, monkeypatch) -> None:
    """With the budget spent by the checks, the bench still times training and generation and says what it skipped."""
    monkeypatch.setattr(run, "CHECKED_METHODS", ("red",))
    out = tmp_path / "check"
    command = ["check", "--device", "cpu", "--model", "tiny", "--steps", "2", "--bench", "--minutes", "0.001"]
    assert main([*command, "--out", str(out)]) == 0
    rows = {row["name"]: row for row in json.loads((out / "check.json").read_text())["checks"]}
    later = "many_edits, engine, run_store, batched_compare, demos, memory, compiled_step, compiled_generation"
    assert rows["bench: finishes"]["value"].endswith(f"; skipped: {later}")
    bench = json.loads((out / "bench" / "bench.json").read_text())
    assert bench["complete"] is True and bench["training"]["red_ffn"]["median_ms"] > 0
    assert bench["compiled_step"]["skipped"].startswith("the time budget of 0 s was spent")
    assert bench["red_compiled_step_over_floor"] is None and bench["generation"]
    assert "## Compiled training step\n\nSkipped: the time budget" in (out / "bench" / "bench.md").read_text()


def test_check_refuses_a_budget_that_is_not_positive(capsys) -> None:
    assert main(["check", "--device", "cpu", "--minutes", "0"]) == 1
    assert "--minutes must be positive, got 0.0" in capsys.readouterr().err
