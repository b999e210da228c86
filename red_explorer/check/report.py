"""The check's results: one row per check (name, pass/fail, value, tolerance, seconds), saved as each finishes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_STEPS = 20  # training steps per method
DEFAULT_MINUTES = 5.0  # the whole check on an H100/H200, the bench included


@dataclass
class CheckResult:
    """One check: what was measured against what it must satisfy."""

    name: str
    passed: bool
    value: str  # the measured value, in words or digits
    tolerance: str  # what the value must satisfy
    seconds: float
    note: str = ""


@dataclass
class CheckReport:
    """Every check of one run, written to ``out/check.json`` and ``out/check.md`` after each check."""

    out: Path
    facts: dict  # device, dtype, model, versions
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(result.passed for result in self.results)

    def run(self, name: str, check: Callable[[], tuple[bool, str, str]]) -> CheckResult:
        """Run ``check`` (returns passed, value, tolerance), time it, keep the row; an exception is a failure."""
        start = time.perf_counter()
        try:
            passed, value, tolerance = check()
            note = ""
        except Exception as error:  # noqa: BLE001 - a check that breaks is a failed check, reported as such
            passed, value, tolerance, note = False, "error", "no error", f"{type(error).__name__}: {error}"
        return self.add(CheckResult(name, bool(passed), value, tolerance, time.perf_counter() - start, note))

    def add(self, result: CheckResult) -> CheckResult:
        self.results.append(result)
        self.write()
        return result

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        record = self.facts | {"passed": self.passed, "checks": [asdict(result) for result in self.results]}
        (self.out / "check.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        (self.out / "check.md").write_text(markdown(self))


def markdown(report: CheckReport) -> str:
    """The report as a markdown table."""
    failed = [result.name for result in report.results if not result.passed]
    verdict = "all checks pass" if not failed else f"{len(failed)} failed: {', '.join(failed)}"
    lines = ["# red-explorer check", ""]
    lines += [f"- {key}: {value}" for key, value in report.facts.items() if not isinstance(value, dict)]
    lines += [f"- **{verdict}** ({len(report.results)} checks)", ""]
    lines += ["| check | result | value | tolerance | seconds | note |", "|---|---|---|---|---|---|"]
    for result in report.results:
        verdict = "pass" if result.passed else "**fail**"
        note = result.note.replace("|", "/").replace("\n", " ")
        lines.append(
            f"| {result.name} | {verdict} | {result.value} | {result.tolerance} | {result.seconds:.2f} | {note} |"
        )
    return "\n".join(lines) + "\n"
