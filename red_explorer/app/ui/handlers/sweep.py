"""Ablations tab, sweep mode: a learning-rate sweep per method, its chart, the method card and its files."""

from __future__ import annotations

from html import escape

import pandas as pd

from red_explorer.app.method_card_plot import method_card_figure
from red_explorer.app.plots import empty_figure
from red_explorer.app.sweep_plot import sweep_figure
from red_explorer.app.sweeping import edge_hints, method_specs, rates_preview, sweep_config, write_files
from red_explorer.app.ui.handlers.common import (
    SWEEP_JOB,
    Notice,
    count,
    follow,
    given_progress,
    plural,
    status_html,
    stream,
    train_options,
)
from red_explorer.app.ui.handlers.data import length_warning
from red_explorer.app.ui.session import Session
from red_explorer.choice.card import CARD_COLUMNS, CARD_FILE, card_rows
from red_explorer.choice.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_STEPS
from red_explorer.choice.sweep import RESULTS_FILE, read_results
from red_explorer.runs.labels import short_number

JOB = SWEEP_JOB
SHOW = {key: show for key, _, show in CARD_COLUMNS}  # how the method card writes each value
CARD_TABLE_COLUMNS = [
    "method",
    "best lr",
    "metric",
    "trainable params",
    "time / step",
    "peak memory",
    "forgetting",
    "run",  # the kept run of the best point (Inspect, Compare and Export list it)
]


def preview(methods: list[str] | None, learning_rates: str | None) -> str:
    """The rates each ticked method will try (shown as the user edits the choices)."""
    return rates_preview(methods, learning_rates)


def _cell(row: dict, key: str) -> str:
    value = row.get(key)
    return "—" if value is None or (key == "peak_memory_bytes" and not value) else SHOW[key](value)


def card_table(best: list[dict], device: str = "cpu") -> pd.DataFrame:
    """The method card: per method its best rate, its metric after training there and what that run cost.

    Peak memory only on a GPU, as in the Train tab: on a CPU the process's memory is shared by everything in it.
    """
    rows = [
        {
            "method": row["label"],
            "best lr": short_number(row["learning_rate"]),
            "metric": f"{row['metric']} {row['after']:.4f}",
            "trainable params": count(row["trainable_parameters"]),
            "time / step": _cell(row, "seconds_per_step"),
            "peak memory": _cell(row, "peak_memory_bytes"),
            "forgetting": _cell(row, "forgetting"),
            "run": row.get("run_label", ""),
        }
        for row in best
    ]
    columns = [column for column in CARD_TABLE_COLUMNS if device.startswith("cuda") or column != "peak memory"]
    return pd.DataFrame(rows, columns=columns)


class _Tracker:
    """What the sweep thread reports (the point under way, its steps) and the UI thread shows.

    The figures are drawn again only when a point ends: building a figure costs more than a poll.
    """

    def __init__(self, names: list[str], workbench, progress, forgetting: bool = False):
        self.names, self.workbench, self.progress, self.forgetting = names, workbench, progress, forgetting
        self.title = sweep_title(workbench)
        self.fraction, self.text, self.started = 0.0, f"**Running** {plural(len(names), 'point')}…", False
        self.chart, self.charted = empty_figure("Points appear as they finish"), 0
        device = workbench.key.device
        self.waiting = card_table([], device), empty_figure("The method card comes at the end"), None

    def on_progress(self, index: int, total: int, event) -> None:
        self.started = True
        step = f", step {event.step}/{event.total_steps}" if event is not None else ""
        if event is not None and event.step == event.total_steps:  # the steps are done; the point is not
            step += ": validating" + (", then measuring forgetting …" if self.forgetting else " …")
        self.fraction = (index + (event.step / event.total_steps if event else 0)) / total
        self.text = f"**Running {self.names[index]}** (point {index + 1}/{total}{step})"
        self.progress(self.fraction, desc=f"{self.names[index]} {index + 1}/{total}{step}")

    def outputs(self, stopping: bool = False) -> tuple:
        points = list(self.workbench.sweep_points) if self.started else []  # this sweep's once it reports
        if len(points) != self.charted:
            self.chart, self.charted = sweep_figure(points, title=self.title), len(points)
        text = "**Stopping** the sweep after this point…" if stopping else self.text
        return status_html(text, self.fraction), self.chart, *self.waiting


def sweep_title(workbench) -> str:
    """The sweep chart's title, with the data file it reads."""
    name = workbench.data.name if workbench.data is not None else "no data"
    return f"Validation metric against learning rate on {name}"


def _outputs(results: dict, files: list[str], status: str, device: str, title: str) -> tuple:
    """A finished sweep's outputs: status, chart, card table and figure, the two files."""
    rows = card_rows(results)
    figure = method_card_figure(rows) if rows else empty_figure("No point completed")
    chart = sweep_figure(results["points"], results["higher_is_better"], title)
    return status, chart, card_table(rows, device), figure, files


def _done(session: Session, result, names: list[str]) -> tuple:
    workbench = session.workbench
    files = [str(path) for path in write_files(result, workbench.folder() / JOB)]
    first = workbench.runs.get(result.points[0]["run_label"]) if result.points else None
    stopped = " (stopped)" if len(result.points) < len(names) else ""
    kept = f", kept as runs under “{first.group}” (Inspect, Compare and Export list them)" if first else ""
    results = result.to_dict()
    hints = "".join(f" {hint}." for hint in edge_hints(results))
    status = status_html(f"**Done:** {len(result.points)}/{len(names)} points{stopped}{kept}.{hints}")
    return _outputs(results, files, status, workbench.key.device, sweep_title(workbench))


def sweep(
    session: Session,
    methods: list[str],
    learning_rates: str = "auto",
    max_steps: float | None = DEFAULT_MAX_STEPS,
    batch_size: float = DEFAULT_BATCH_SIZE,
    max_length: float = 128,
    epochs: float = 1.0,
    seed: float = 0,
    forgetting: bool = True,
    progress=None,
):
    """Sweep each method's learning rate; yields (status, chart, card table, card figure, files)."""
    specs = method_specs(methods)
    options = train_options(epochs, max_steps, batch_size, max_length, seed)
    config = sweep_config(learning_rates, options, forgetting)
    workbench = session.workbench
    if workbench.data is None:
        raise ValueError("no data loaded yet: upload a file or pick a sample in the Data tab, then run the sweep")
    names = [f"{spec.label} lr {short_number(lr)}" for spec in specs for lr in config.rates_for(spec.entry)]
    workbench.new_job()
    tracker = _Tracker(names, workbench, given_progress(progress), config.forgetting)
    warning = length_warning(workbench.data, options.max_length)
    with session.running(JOB):
        yield Notice(tracker.outputs(), warning) if warning else tracker.outputs()
        call = lambda: workbench.sweep(specs, config, options.max_length, tracker.on_progress)  # noqa: E731
        result = yield from stream(
            follow(workbench, call), lambda: tracker.outputs(stopping=workbench.stop_event.is_set())
        )
        yield _done(session, result, names)


def _previous(session: Session) -> dict | None:
    """The results.json of the session's last finished sweep, when it is still the latest sweep."""
    path = session.workbench.folder() / JOB / RESULTS_FILE
    if not path.is_file():
        return None
    results = read_results(path)
    labels = [point.get("run_label") for point in results["points"]]
    return results if labels == [point["run_label"] for point in session.workbench.sweep_points] else None


def restore_after_failure(session: Session):
    """After a refused or failed sweep: the reason, and the last finished sweep's outputs, or the points that ended."""
    reason = escape(session.last_error or "the sweep did not finish")
    status = f"<div class='red-status'>✕ <b>Sweep not run to the end:</b> {reason}</div>"
    previous = _previous(session)
    if previous is not None:
        folder = session.workbench.folder() / JOB
        files = [str(folder / RESULTS_FILE), str(folder / CARD_FILE)]
        return _outputs(previous, files, status, session.workbench.key.device, sweep_title(session.workbench))
    points = session.workbench.sweep_points
    chart = sweep_figure(points) if points else empty_figure("No results: the sweep did not run")
    return (
        status,
        chart,
        card_table([], session.workbench.key.device),
        empty_figure("No method card: the sweep did not finish"),
        None,
    )
