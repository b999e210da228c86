"""One user's workbench over the engine: their model choice, data, trained runs and results (no gradio)."""

from __future__ import annotations

import copy
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from torch import nn

from red_explorer.app.data_state import LENGTH_PROBE, DataState
from red_explorer.app.model_info import ModelInfo, model_info
from red_explorer.app.model_registry import SHARED_MODELS, ModelKey, ModelRegistry
from red_explorer.app.options import TrainOptions
from red_explorer.app.snippet import python_snippet
from red_explorer.core.archive import safe_extract, zip_folder
from red_explorer.core.merged import save_merged
from red_explorer.core.registry import MethodSpec, load_method, save_method
from red_explorer.data.prepared import PreparedData, prepare_data
from red_explorer.data.render import prompt_text, reference_text
from red_explorer.data.tables import DataConfig
from red_explorer.engine.ablation import result_row, run_ablation
from red_explorer.engine.analysis import (
    EditorMagnitudes,
    RoutingTable,
    SiteEdit,
    editor_table,
    routing_table,
    site_edits,
)
from red_explorer.engine.experiment import RunResult, train_method
from red_explorer.engine.generation import Contender, DecodingSettings, Generation, chat_prompt, compare_generations
from red_explorer.engine.training import Callback
from red_explorer.models.loading import LoadedModel


@dataclass
class SessionRun:
    """A trained (or imported) method kept by one session: its model is that session's own copy."""

    label: str
    spec: MethodSpec
    model: nn.Module = field(repr=False)
    key: ModelKey
    result: RunResult | None = None  # None for imported edits


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"


class Workbench:
    """Everything one user has: a model choice (the base model itself is shared), data, runs, results.

    Runs are capped (``max_runs``, oldest dropped); ``close()`` frees them. ``stop()`` asks the current
    training job to stop between steps.
    """

    def __init__(self, registry: ModelRegistry = SHARED_MODELS, max_runs: int = 4):
        self.registry = registry
        self.max_runs = max_runs
        self.key = ModelKey()
        self.data: DataState | None = None
        self.runs: OrderedDict[str, SessionRun] = OrderedDict()
        self.ablation_rows: list[dict] = []
        self.stop_event = threading.Event()
        self._lock = threading.RLock()
        self._folder: Path | None = None

    # ------------------------------------------------------------ model

    def training_key(self) -> ModelKey:
        """The model key, with the number of labels of the data for classification."""
        if self.key.task == "classification" and self.data is not None:
            return replace(self.key, num_labels=len(self.data.detected.labels))
        return self.key

    def loaded(self) -> LoadedModel:
        """The shared base model this session uses (loaded on first use)."""
        return self.registry.get(self.training_key())

    def model_status(self) -> str:
        return self.registry.status(self.training_key())

    def load_model(self, spec: str = "default", task: str = "causal-lm", device: str = "auto", dtype: str = "auto"):
        """Choose and load a base model; a new model drops this session's runs and re-reads its data."""
        new_key = ModelKey(spec.strip() or "default", task, None, device, dtype).resolved()
        old_key, self.key = self.key, new_key
        try:
            loaded = self.loaded()
        except Exception:
            self.key = old_key
            raise
        info = model_info(loaded)
        if replace(new_key, num_labels=None) != replace(old_key.resolved(), num_labels=None):
            info.notes += self._model_changed()
        return info

    def _model_changed(self) -> list[str]:
        notes = []
        with self._lock:
            if self.runs or self.ablation_rows:
                notes.append("the trained runs and ablation results of the previous model were dropped")
            self.runs.clear()
            self.ablation_rows = []
        if self.data is not None:
            data, self.data = self.data, None
            try:
                self.load_data(data.path, data.validation_fraction, data.max_rows, name=data.name)
            except ValueError as error:
                notes.append(f"the data file {data.name} was unloaded: {error}")
        return notes

    def model_info(self) -> ModelInfo:
        return model_info(self.loaded())

    # ------------------------------------------------------------ data

    def load_data(self, path, validation_fraction: float = 0.1, max_rows: int | None = None, name: str | None = None):
        """Read, detect and split a data file for the current model's task and tokenizer."""
        path = Path(path)
        config = self._data_config(LENGTH_PROBE, validation_fraction, max_rows)
        tokenizer = self.registry.get(self.key).tokenizer
        probe = prepare_data(path, tokenizer, config)
        self.data = DataState(path, name or path.name, validation_fraction, max_rows, probe)
        return self.data

    def _data_config(self, max_length: int, validation_fraction: float, max_rows: int | None) -> DataConfig:
        return DataConfig(
            task=self.key.task, max_length=max_length, validation_fraction=validation_fraction, max_rows=max_rows
        )

    def prepared(self, max_length: int) -> PreparedData:
        """The data tokenised at ``max_length`` (cached)."""
        data = self._require_data()
        if max_length not in data.prepared:
            config = self._data_config(max_length, data.validation_fraction, data.max_rows)
            data.prepared[max_length] = prepare_data(data.path, self.loaded().tokenizer, config)
        return data.prepared[max_length]

    def _require_data(self) -> DataState:
        if self.data is None:
            raise ValueError("no data loaded yet: upload a file or pick a sample in the Data tab")
        return self.data

    def validation_examples(self) -> list[tuple[str, str | None]]:
        """(prompt as the model sees it, reference) for every validation row."""
        data = self._require_data()
        tokenizer = self.loaded().tokenizer
        split = data.probe.raw["validation"]
        return [
            (prompt_text(example, data.detected, tokenizer), reference_text(example, data.detected))
            for example in split
        ]

    # ------------------------------------------------------------ training

    def new_job(self) -> None:
        """Forget an earlier stop request: a new training job starts."""
        self.stop_event.clear()

    def stop(self) -> None:
        self.stop_event.set()

    def train(self, spec: MethodSpec, options: TrainOptions, callback: Callback | None = None) -> SessionRun:
        """Train ``spec`` on a copy of the shared base model; the run is kept (the oldest beyond the cap dropped)."""
        loaded, data = self.loaded(), self.prepared(options.max_length)
        result = train_method(loaded, data, spec, options.train_config(spec), callback, self.stop_event)
        run = SessionRun(spec.label, spec, result.model, self.training_key(), result)
        self._keep(run)
        return run

    def _keep(self, run: SessionRun) -> None:
        with self._lock:
            self.runs.pop(run.label, None)
            self.runs[run.label] = run
            while len(self.runs) > self.max_runs:
                self.runs.popitem(last=False)

    def run(self, label: str) -> SessionRun:
        with self._lock:
            if label not in self.runs:
                known = ", ".join(self.runs) or "none yet"
                raise ValueError(f"no run called {label!r} in this session (runs: {known}); train one first")
            return self.runs[label]

    def run_labels(self, methods: tuple[str, ...] | None = None) -> list[str]:
        with self._lock:
            return [label for label, run in self.runs.items() if methods is None or run.spec.method in methods]

    def summary_rows(self) -> list[dict]:
        """One result row per trained run (imported edits have no training record)."""
        with self._lock:
            runs = list(self.runs.values())
        return [result_row(run.result, self.key.task) for run in runs if run.result is not None]

    def ablate(
        self,
        specs: list[MethodSpec],
        options: TrainOptions,
        on_progress: Callable[[int, int, object], None] | None = None,
        on_row: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Train every spec through the one training path; rows replace this session's previous results."""
        loaded, data = self.loaded(), self.prepared(options.max_length)
        loop = options.loop_options() | {"eval_every": None}
        rows: list[dict] = []
        for index, spec in enumerate(specs):
            if self.stop_event.is_set():
                break
            report = (lambda i, n, event, index=index: on_progress(index, len(specs), event)) if on_progress else None
            rows += run_ablation(loaded, data, [spec], loop, on_progress=report, stop=self.stop_event)
            if on_row:
                on_row(rows[-1])
        self.ablation_rows = rows
        return rows

    # ------------------------------------------------------------ generation

    def compare(
        self,
        prompt: str = "",
        example_index: int | None = None,
        labels: list[str] | None = None,
        settings: DecodingSettings | None = None,
    ) -> tuple[str, str | None, list[Generation]]:
        """The base model and each chosen run on one prompt, same decoding: (prompt, reference, generations)."""
        loaded = self.loaded()
        if loaded.task != "causal-lm":
            raise ValueError("Compare generates text, so it needs a causal-lm model; this one classifies")
        reference = None
        if example_index is not None:
            examples = self.validation_examples()
            if not 0 <= example_index < len(examples):
                raise ValueError(f"validation example {example_index} does not exist (0..{len(examples) - 1})")
            formatted, reference = examples[example_index]
        elif prompt.strip():
            formatted = chat_prompt(loaded.tokenizer, prompt.strip())
        else:
            raise ValueError("type a prompt or pick a validation example")
        chosen = self.run_labels() if labels is None else labels
        contenders = [Contender("base", loaded.model)] + [self._contender(label) for label in chosen]
        settings = settings or DecodingSettings()
        # untimed warm-up of every model first (one-off costs), so no model is timed cold
        compare_generations(contenders, loaded.tokenizer, [formatted], replace(settings, max_new_tokens=4))
        generations = compare_generations(contenders, loaded.tokenizer, [formatted], settings, [reference])
        return formatted, reference, generations

    def _contender(self, label: str) -> Contender:
        run = self.run(label)
        if run.key != self.training_key():
            raise ValueError(f"{label} was trained on another model; retrain it on this one")
        return Contender(label, run.model)

    # ------------------------------------------------------------ files

    def folder(self) -> Path:
        """This session's private scratch folder (removed by ``close``)."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="red-explorer-"))
        return self._folder

    def export_edits_zip(self, label: str) -> Path:
        """The run's method in its own format (RED/TARE edits, a LoRA adapter), zipped."""
        run, loaded = self.run(label), self.loaded()
        if run.spec.entry.saves_whole_model:
            raise ValueError("full fine-tuning has no separate edits: download the merged model instead")
        target = self._fresh(f"{_slug(label)}-edits")
        save_method(run.model, run.spec, target, loaded.base_name, loaded.head_parameter_names)
        return zip_folder(target, target.with_suffix(".zip"))

    def _fresh(self, name: str) -> Path:
        target = self.folder() / name
        shutil.rmtree(target, ignore_errors=True)
        target.with_suffix(".zip").unlink(missing_ok=True)
        return target

    def export_merged_zip(self, label: str) -> Path:
        """A plain checkpoint with the edits folded into the weights, zipped; MergeError when it cannot be exact."""
        run, loaded = self.run(label), self.loaded()
        target = self._fresh(f"{_slug(label)}-merged")
        save_merged(run.model, target, loaded.tokenizer)
        return zip_folder(target, target.with_suffix(".zip"), compress=False)

    def import_edits_zip(self, archive: str | Path) -> SessionRun:
        """Validate and unpack an edits zip, attach it to a copy of the base model, and keep it as a run."""
        target = self._fresh("imported")
        safe_extract(archive, target)
        model, spec = load_method(copy.deepcopy(self.loaded().model), target)
        run = SessionRun(f"{spec.label} (imported)", spec, model.eval(), self.training_key())
        self._keep(run)
        return run

    def python_snippet(self, label: str, zip_name: str | None = None) -> str:
        run = self.run(label)
        zip_name = zip_name or f"{_slug(label)}-edits.zip"
        key = self.training_key()
        return python_snippet(zip_name, label, run.spec.method, key.spec, key.task, key.num_labels)

    # ------------------------------------------------------------ inspection

    def red_edits(self, label: str) -> list[SiteEdit]:
        """The learned RED vectors of a run, per edited site."""
        from red_explorer.core.red.edit import red_vectors

        run = self.run(label)
        if run.spec.method != "red":
            raise ValueError(f"{label} is a {run.spec.method.upper()} run; this view shows what RED runs learned")
        return site_edits(red_vectors(run.model))

    def tare_inspection(self, label: str, text: str) -> tuple[EditorMagnitudes, RoutingTable]:
        """A TARE run's editor magnitudes and the routing of ``text`` (token × site)."""
        from red_explorer.core.tare.routing import editor_magnitudes, tare_routing

        run = self.run(label)
        if run.spec.method != "tare":
            raise ValueError(f"{label} is not a TARE run: train TARE (Train tab) to see its routing")
        if not text.strip():
            raise ValueError("type a text to route through the TARE editors")
        tokenizer = self.loaded().tokenizer
        device = next(run.model.parameters()).device
        input_ids = tokenizer(text.strip(), return_tensors="pt", truncation=True, max_length=64)["input_ids"]
        routing = tare_routing(run.model, input_ids.to(device))
        tokens = [token.replace("Ġ", "·").replace("▁", "·") for token in tokenizer.convert_ids_to_tokens(input_ids[0])]
        return editor_table(editor_magnitudes(run.model)), routing_table(routing, tokens)

    def close(self) -> None:
        """Stop any job and free everything this session holds (the shared base model stays)."""
        self.stop_event.set()
        with self._lock:
            self.runs.clear()
            self.ablation_rows = []
        self.data = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
