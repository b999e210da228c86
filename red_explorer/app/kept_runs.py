"""How the app sees a run kept in the run store: its record and figures, never a model in memory."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import nn

from red_explorer.app.model_registry import ModelKey
from red_explorer.core.registry import MethodSpec
from red_explorer.engine.ablation import result_row
from red_explorer.runs.attach import attach_saved, release
from red_explorer.runs.gallery import GALLERY_OWNER, gallery_runs
from red_explorer.runs.home import default_home, restart_warning
from red_explorer.runs.labels import unique_label
from red_explorer.runs.record import RunRecord
from red_explorer.runs.shares import Share, ShareNotFoundError, Shares
from red_explorer.runs.size import human_bytes
from red_explorer.runs.store import METRICS_FILE, RunStore

LOCAL_OWNER = "local"  # the owner of the runs the CLI keeps
SHARED_MARK = " (shared)"  # after the label of a run opened from another owner's share link
DEFAULT_QUOTA_MB = 500


@dataclass
class RunFigures:
    """What training recorded about a run (the fields of RunResult the app shows), read from the store."""

    spec: MethodSpec
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    trainable_parameters: int
    train_seconds: float
    peak_memory_bytes: int
    stopped_reason: str
    train_loss: list[float] = field(default_factory=list)
    eval_history: list[dict] = field(default_factory=list)


@dataclass
class SessionRun:
    """One kept run of an owner: its record on disk (the method's small files), applied on demand.

    ``shared_label`` is set for a run of another owner, read-only, listed under it: one opened from a share link,
    or one of the gallery's ready-made runs.
    """

    record: RunRecord
    shared_label: str | None = None

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def label(self) -> str:
        return self.shared_label or self.record.label

    @property
    def shared(self) -> bool:
        return self.shared_label is not None

    @property
    def gallery(self) -> bool:
        """One of the gallery's ready-made runs (shipped with the package; read-only like a shared run)."""
        return self.shared and self.record.owner == GALLERY_OWNER

    @property
    def spec(self) -> MethodSpec:
        return self.record.method_spec

    @property
    def group(self) -> str | None:
        return self.record.group

    @property
    def whole_model(self) -> bool:
        """Full fine-tuning: the run is a whole checkpoint on disk, loaded only when used."""
        return self.spec.entry.saves_whole_model

    @property
    def result(self) -> RunFigures | None:
        """The training figures; None for imported edits (they carry no training record)."""
        record = self.record
        if record.stopped_reason == "imported" or not record.metrics_after:
            return None
        return RunFigures(
            record.method_spec,
            record.metrics_before,
            record.metrics_after,
            record.trainable_parameters,
            record.train_seconds,
            _peak_memory(record),
            record.stopped_reason,
            record.loss_history,
            record.eval_history,
        )


def _peak_memory(record: RunRecord) -> int:
    path = record.path / METRICS_FILE if record.path else None
    if path is None or not path.is_file():
        return 0
    return int(json.loads(path.read_text()).get("peak_memory_bytes") or 0)


def same_base(record: RunRecord, key: ModelKey) -> bool:
    """Whether a run was trained on the base model of ``key`` (model, task and, when known, labels; any dtype)."""
    base = record.base
    labels_match = key.num_labels is None or base.num_labels == key.num_labels
    return base.spec == key.spec and base.task == key.task and labels_match


def app_store() -> RunStore:
    """The app's run store under $RED_EXPLORER_HOME, with a per-owner quota of $RED_EXPLORER_QUOTA_MB (default 500)."""
    megabytes = float(os.environ.get("RED_EXPLORER_QUOTA_MB") or DEFAULT_QUOTA_MB)
    return RunStore(default_home() / "runs", quota_bytes=int(megabytes * 1_000_000))


def restart_note() -> str | None:
    """The Export tab's warning on a Space whose run store does not survive a restart, else None."""
    return restart_warning(default_home())


def on_a_space() -> bool:
    """Whether the app runs on a hosted Space ($SPACE_ID set): then the CLI's local runs are not offered."""
    return bool(os.environ.get("SPACE_ID"))


class KeptRuns:
    """The owner's kept runs, for a workbench: listed from the store, renamed, deleted, applied on demand.

    Runs opened from share links (``shared_tokens``) are listed after the owner's, read-only, marked "(shared)";
    the gallery's runs for the current base model come last, read-only too.
    Needs ``store``, ``owner``, ``show_cli_runs``, ``shared_tokens``, ``registry``, ``training_key()`` and
    ``loaded()`` from the class using it.
    """

    def own_runs(self) -> list[SessionRun]:
        """Every run of the owner, on any base model, oldest first."""
        return [SessionRun(record) for record in self.store.list(self.owner)]

    def all_runs(self) -> list[SessionRun]:
        """The owner's runs, then the runs shared with this page (any base model), then the gallery's (this model)."""
        own = self.own_runs()
        shared = self.shared_runs({run.label for run in own})
        return own + shared + self.gallery_runs({run.label for run in own + shared})

    def gallery_runs(self, taken: set[str]) -> list[SessionRun]:
        """The gallery's ready-made runs on the current base model, read-only, labelled apart from ``taken``."""
        key, runs, taken = self.training_key().resolved(), [], set(taken)
        for record in gallery_runs():
            if same_base(record, key):
                label = unique_label(record.label, taken)
                taken.add(label)
                runs.append(SessionRun(record, label))
        return runs

    def shared_runs(self, taken: set[str] | None = None) -> list[SessionRun]:
        """The runs this page opened from share links, still shared, labelled apart from ``taken`` labels."""
        taken = set(taken if taken is not None else (run.label for run in self.own_runs()))
        runs = []
        for token in self.shared_tokens:
            try:
                record = Shares(self.store).resolve(token)
            except ShareNotFoundError:
                continue  # revoked, or the run deleted: gone from every list
            label = unique_label(record.label + SHARED_MARK, taken)
            taken.add(label)
            runs.append(SessionRun(record, label))
        return runs

    @property
    def runs(self) -> OrderedDict[str, SessionRun]:
        """The owner's runs trained on the current base model, by label, oldest first."""
        key = self.training_key().resolved()
        return OrderedDict((run.label, run) for run in self.all_runs() if same_base(run.record, key))

    def run(self, label: str) -> SessionRun:
        runs = self.runs
        if label not in runs:
            elsewhere = [run.record.base for run in self.all_runs() if run.label == label]
            if elsewhere:
                model = elsewhere[0].spec
                raise ValueError(f"{label!r} was trained on another base model ({model}): load it in the Model tab")
            known = ", ".join(runs) or "none yet"
            raise ValueError(f"no run called {label!r} on this model (runs: {known}); train one first")
        return runs[label]

    def any_run(self, label: str) -> SessionRun:
        """The owner's run called ``label`` on any base model (for what reads its files only, e.g. its vectors)."""
        found = [run for run in self.all_runs() if run.label == label]
        return found[0] if found else self.run(label)  # the error lists this model's runs

    def run_labels(self, methods: tuple[str, ...] | None = None) -> list[str]:
        """This model's runs (of ``methods``) but the gallery's: what "the latest run" and "every run" mean."""
        runs = self.runs.items()
        return [label for label, run in runs if not run.gallery and (methods is None or run.spec.method in methods)]

    def summary_rows(self) -> list[dict]:
        """One result row per trained run (imported edits have no training record)."""
        runs = [run.result for run in self.runs.values()]
        return [result_row(result, self.key.task) for result in runs if result is not None]

    def rename_run(self, label: str, new_label: str) -> SessionRun:
        """Give a run a new label (unique among the owner's runs)."""
        return SessionRun(self.store.rename(self.owner, self.own_run(label, "rename").id, new_label))

    def delete_run(self, label: str) -> SessionRun:
        """Delete one run from disk (and its share links): the only way a run goes away."""
        run = self.own_run(label, "delete")
        Shares(self.store).revoke_run(self.owner, run.id)
        return SessionRun(self.store.delete(self.owner, run.id))

    def own_run(self, label: str, doing: str) -> SessionRun:
        """The owner's run ``label``; a clear refusal for a read-only run (shared with this page, or the gallery's)."""
        run = self.run(label)
        if run.gallery:
            raise ValueError(
                f"{label!r} is a gallery run, read-only: nobody can {doing} it; it ships with the app"
                + ("" if doing == "delete" else " (Export › download its edits, then load the zip: a copy of your own)")
            )
        if run.shared:
            raise ValueError(
                f"{label!r} is shared with you read-only: only its owner can {doing} it "
                "(download its edits and load the zip to keep a copy of your own)"
            )
        return run

    def open_share(self, token: str) -> SessionRun | None:
        """List the run a share link opens on this page, read-only; None when it is one of the owner's own runs."""
        record = Shares(self.store).resolve(token)
        if record.owner == self.owner:
            return None
        if token not in self.shared_tokens:
            self.shared_tokens.append(token)
        return next(run for run in self.shared_runs() if (run.record.owner, run.id) == (record.owner, record.id))

    def share_run(self, label: str) -> Share:
        """A new share link to one of the owner's runs."""
        return Shares(self.store).create(self.owner, self.own_run(label, "share").id)

    def share_links(self) -> list[tuple[Share, str]]:
        """The owner's active share links with the label of the run each opens, oldest first."""
        labels = {run.id: run.label for run in self.own_runs()}
        return [
            (share, labels[share.run_id]) for share in Shares(self.store).list(self.owner) if share.run_id in labels
        ]

    def revoke_share(self, token: str) -> Share:
        """End one of the owner's share links: whoever opened it no longer sees the run."""
        return Shares(self.store).revoke(self.owner, token)

    def usage(self) -> str:
        """'1.2 MB of 500.0 MB in 3 runs of your own': the owner's disk use against the quota."""
        used, runs = self.store.usage_bytes(self.owner), len(self.own_runs())
        quota = f" of {human_bytes(self.store.quota_bytes)}" if self.store.quota_bytes else ""
        return f"{human_bytes(used)}{quota} in {runs} run{'s' if runs != 1 else ''} of your own"

    def local_runs(self) -> list[SessionRun]:
        """The CLI's runs (owner "local") for this model, offered read-only when the app was started to share them."""
        if on_a_space() or not self.show_cli_runs or self.owner == LOCAL_OWNER:
            return []
        key = self.training_key().resolved()
        return [SessionRun(record) for record in self.store.list(LOCAL_OWNER) if same_base(record, key)]

    def import_local(self, label: str) -> SessionRun:
        """Copy one of the CLI's runs into this owner's runs (the CLI's copy is left as it is)."""
        found = {run.label: run for run in self.local_runs()}
        if label not in found:
            raise ValueError(f"no local run called {label!r} for this model (local runs: {', '.join(found) or 'none'})")
        run = found[label]
        return SessionRun(self.store.import_edits(self.owner, run.record.path, run.spec, self.loaded(), label))

    @contextmanager
    def attached(self, label: str) -> Iterator[nn.Module]:
        """The shared base with the run applied (edits or adapters attached, under the base's lock; a full run
        loaded from disk), for the length of the block only; the base is plain again after."""
        run, loaded = self.run(label), self.loaded()
        with self.registry.base_lock(self.training_key()):
            model, spec = attach_saved(loaded.model, run.record.path, run.spec)
            try:
                yield model
            finally:
                release(model, spec)
