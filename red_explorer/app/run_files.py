"""A session's run files: edits and merged-model zips and a notebook to download, an edits zip to import, the
snippet to apply."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from red_explorer.app.kept_runs import SessionRun
from red_explorer.app.snippet import python_snippet
from red_explorer.core.archive import safe_extract, zip_folder
from red_explorer.core.merged import save_merged
from red_explorer.runs.attach import attach_saved, release
from red_explorer.runs.notebook import write_run_notebook
from red_explorer.runs.store import RunStore


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"


class RunFiles:
    """Files made from a workbench's runs, written in its scratch ``folder()`` (a mixin of ``Workbench``)."""

    def _fresh(self, name: str) -> Path:
        target = self.folder() / name
        shutil.rmtree(target, ignore_errors=True)
        target.with_suffix(".zip").unlink(missing_ok=True)
        return target

    def export_edits_zip(self, label: str) -> Path:
        """The run's method files as kept (RED/TARE edits, a LoRA adapter) and metrics.json, zipped."""
        run = self.run(label)
        if run.whole_model:
            raise ValueError("full fine-tuning has no separate edits: download the merged model instead")
        target = self._fresh(f"{_slug(label)}-edits")
        store = RunStore(run.record.path.parents[1]) if run.gallery else self.store  # the gallery's own store
        return store.export_zip(run.record.owner, run.id, target).replace(target.with_suffix(".zip"))

    def export_merged_zip(self, label: str) -> Path:
        """A plain checkpoint with the edits folded into the weights, zipped; MergeError when it cannot be exact."""
        target = self._fresh(f"{_slug(label)}-merged")
        with self.attached(label) as model:
            save_merged(model, target, self.loaded().tokenizer)
        return zip_folder(target, target.with_suffix(".zip"), compress=False)

    def export_notebook(self, label: str) -> Path:
        """A notebook that reproduces the run; data the session still holds (or a bundled sample) goes inside it."""
        run = self.any_run(label)
        held = [self.data.path] if self.data is not None else []
        return write_run_notebook(run.record, self._fresh(f"{_slug(label)}-notebook") / f"{_slug(label)}.ipynb", held)

    def import_edits_zip(self, archive: str | Path) -> SessionRun:
        """Validate and unpack an edits zip (attached once to the base and released), then keep it as a run."""
        target, loaded = self._fresh("imported"), self.loaded()
        safe_extract(archive, target)
        with self.registry.base_lock(self.training_key()):
            model, spec = attach_saved(loaded.model, target)
            release(model, spec)
        return SessionRun(self.store.import_edits(self.owner, target, spec, loaded))

    def python_snippet(self, label: str, zip_name: str | None = None) -> str:
        run = self.run(label)
        zip_name = zip_name or f"{_slug(label)}-edits.zip"
        key = self.training_key()
        return python_snippet(zip_name, label, run.spec.method, key.spec, key.task, key.num_labels)
