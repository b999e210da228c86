"""One user's workbench over the engine: their model choice, data, kept runs and results (no gradio)."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from red_explorer.app.data_state import LENGTH_PROBE, DataState, kept_copy
from red_explorer.app.kept_runs import KeptRuns, SessionRun, app_store
from red_explorer.app.last_choice import DEFAULT_MAX_LENGTH, LastChoice, recall, remember
from red_explorer.app.model_info import ModelInfo, model_info
from red_explorer.app.model_registry import SHARED_MODELS, ModelKey, ModelRegistry
from red_explorer.app.options import TrainOptions
from red_explorer.app.run_files import RunFiles
from red_explorer.choice.sweep import SweepConfig, SweepResult, run_sweep
from red_explorer.core.checkpoint import read_tensors
from red_explorer.core.registry import MethodSpec
from red_explorer.data.prepared import PreparedData, prepare_data
from red_explorer.data.render import prompt_text, reference_text
from red_explorer.data.tables import DataConfig
from red_explorer.engine.ablation import result_row
from red_explorer.engine.analysis import (
    EditorMagnitudes,
    RoutingTable,
    SiteEdit,
    editor_table,
    routing_table,
    site_edits,
)
from red_explorer.engine.batched_compare import BatchedComparison, SavedRun, compare_batched
from red_explorer.engine.experiment import default_train_config, trained_run
from red_explorer.engine.generation import DecodingSettings, Generation, chat_prompt, rouge_l
from red_explorer.engine.step_timing import StepTiming
from red_explorer.engine.training import Callback
from red_explorer.models.loading import LoadedModel
from red_explorer.runs.labels import short_number
from red_explorer.runs.record import data_fingerprint
from red_explorer.runs.size import estimated_run_bytes
from red_explorer.runs.store import RunStore, check_owner


@dataclass
class Comparison:
    """Compare's answer: the formatted prompt, its reference, one generation per contender, and the timed calls."""

    prompt: str
    reference: str | None
    generations: list[Generation]
    batched: BatchedComparison


def new_owner_key() -> str:
    """A random owner key for a new browser (kept there, it finds the browser's runs again)."""
    return secrets.token_hex(16)


class Workbench(RunFiles, KeptRuns):
    """Everything one user has: a model choice (the base model itself is shared), data, kept runs, results.

    Runs live in the run store under ``owner``, never as model copies: nothing is capped or evicted,
    a save past the owner's quota is refused with a message, and only ``delete_run`` removes a run.
    Shared-base design: one frozen base per (model, device, dtype) serves every session. Training
    works on a private replica, deep-copied from the base under the base's lock when a job starts and
    dropped once the run is saved: a training job takes minutes, and a lock held that long would make
    every other session's generation wait. Applying a kept run (Inspect, Compare, export) attaches its
    edits or adapters to the shared base itself, under the same lock, for milliseconds; a full
    fine-tuning run is a whole checkpoint, kept on disk and loaded only then.
    ``stop()`` asks the current training job to stop between steps. ``show_cli_runs`` offers the command line's
    runs for copying (only an app listening on loopback sets it).
    """

    def __init__(
        self,
        registry: ModelRegistry = SHARED_MODELS,
        store: RunStore | None = None,
        owner: str | None = None,
        show_cli_runs: bool = False,
    ):
        self.registry = registry
        self.store = store if store is not None else app_store()
        self.owner = owner or new_owner_key()
        self.show_cli_runs = show_cli_runs
        self.shared_tokens: list[str] = []  # the share links opened on this page (their runs are listed read-only)
        self.key = ModelKey()
        self.data: DataState | None = None
        self.max_length = DEFAULT_MAX_LENGTH  # the Data tab's, kept with the last choice (a reload restores it)
        self.ablation_rows: list[dict] = []
        self.sweep_points: list[dict] = []  # the points of the latest sweep, as they end
        self.stop_event = threading.Event()
        self._lock = threading.RLock()
        self._folder: Path | None = None

    def set_owner(self, owner: str) -> None:
        """Use the runs of ``owner`` (the key a browser keeps): a reload or a restart finds them again."""
        self.owner = check_owner(owner)

    # ------------------------------------------------------------ model

    def training_key(self) -> ModelKey:
        """The model key, with the number of labels of the data for classification."""
        labels = self.data.detected.labels if self.data is not None else None
        if self.key.task == "classification" and labels:  # data read for another task has none
            return replace(self.key, num_labels=len(labels))
        return self.key

    def loaded(self) -> LoadedModel:
        """The shared base model this session uses (loaded on first use)."""
        return self.registry.get(self.training_key())

    def model_status(self) -> str:
        return self.registry.status(self.training_key())

    def load_model(
        self,
        spec: str = "default",
        task: str = "causal-lm",
        device: str = "auto",
        dtype: str = "auto",
        quantize: str | None = None,
    ):
        """Choose and load a base model; a new model lists its own runs (the others stay kept) and re-reads the data."""
        new_key = ModelKey(spec.strip() or "default", task, None, device, dtype, quantize).resolved()
        old_key, self.key = self.key, new_key
        try:
            loaded = self.loaded()
        except Exception:
            self.key = old_key
            raise
        info = model_info(loaded)
        if replace(new_key, num_labels=None) != replace(old_key.resolved(), num_labels=None):
            info.notes += self._model_changed()
        self._remember()
        return info

    def _remember(self) -> None:
        """Keep the model, data and max length choice in the owner's folder of the store (a reload restores it)."""
        remember(self.store, self.owner, self.key, self.data, self.max_length)

    def remember_max_length(self, max_length: int) -> None:
        """The Data tab's max length was set: keep it with the last choice."""
        if int(max_length) != self.max_length:
            self.max_length = int(max_length)
            self._remember()

    def restore_last(self) -> LastChoice | None:
        """Load the owner's last model and data file again (after a reload); None when nothing was kept."""
        choice = recall(self.store, self.owner)
        if choice is None:
            return None
        self.max_length = choice.max_length
        self.load_model(choice.spec, choice.task, choice.device, choice.dtype, choice.quantize)
        if choice.data_path and self.data is None:
            self.load_data(choice.data_path, choice.validation_fraction, choice.max_rows, name=choice.data_name)
        return choice

    def _model_changed(self) -> list[str]:
        notes = []
        with self._lock:
            if self.ablation_rows:
                notes.append("the ablation table of the previous model was cleared (its runs stay kept)")
            self.ablation_rows = []
        if any(not run.gallery for run in self.all_runs()):
            notes.append("runs of other base models stay kept: the run lists show them as 'other model'")
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
        """Read, detect and split a data file for the current model's task and tokenizer.

        The session keeps its own copy of the file: the upload itself is deleted from the app's cache after an hour,
        and the data is read again for a new max length or model.
        """
        path = Path(path)
        config = self._data_config(LENGTH_PROBE, validation_fraction, max_rows)
        tokenizer = self.registry.get(self.key).tokenizer
        probe = prepare_data(path, tokenizer, config)
        self.data = DataState(
            kept_copy(path, self.folder() / "data"), name or path.name, validation_fraction, max_rows, probe
        )
        self._remember()
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

    @contextmanager
    def replica(self) -> Iterator[LoadedModel]:
        """The base's training replica for one job (reused job after job; reset to the base afterwards)."""
        loaded, key = self.loaded(), self.training_key()
        with self.registry.replicas.lend(key.resolved(), loaded.model, self.registry.base_lock(key)) as model:
            yield replace(loaded, model=model)

    def _train_and_keep(self, loaded, data, spec: MethodSpec, config, callback, fingerprint, group, timing):
        """Train ``spec`` on the replica and keep the run with its ``timing``; the replica is the base again after."""
        with trained_run(loaded, data, spec, config, timing.watching(callback), self.stop_event) as result:
            return result, self.store.save(self.owner, result, loaded, fingerprint, group=group, timing=timing)

    def _check_room(self, loaded: LoadedModel, runs: list[tuple[MethodSpec, int]], what: str) -> None:
        """A DiskFullError or QuotaError before any training when ``runs`` ((spec, how many) pairs) would not fit
        the disk or the owner's quota."""
        size = partial(estimated_run_bytes, task=loaded.task, head_parameter_names=loaded.head_parameter_names)
        needed = sum(count * size(loaded.model, spec) for spec, count in runs)
        self.store.check_room(self.owner, needed, what)

    def _fingerprint(self, data: PreparedData) -> dict | None:
        try:
            return data_fingerprint(self._require_data().path, data)
        except OSError:
            return None

    def train(
        self, spec: MethodSpec, options: TrainOptions, callback: Callback | None = None, group: str | None = None
    ) -> SessionRun:
        """Train ``spec`` on a private replica of the base and keep the run in the store (QuotaError when full)."""
        timing, data = StepTiming(), self.prepared(options.max_length)  # tokenising and the replica are set-up too
        with self.replica() as loaded:
            self._check_room(loaded, [(spec, 1)], "this run")
            fingerprint, config = self._fingerprint(data), options.train_config(spec)
            _, record = self._train_and_keep(loaded, data, spec, config, callback, fingerprint, group, timing)
        return SessionRun(record)

    def ablate(
        self,
        specs: list[MethodSpec],
        options: TrainOptions,
        on_progress: Callable[[int, int, object], None] | None = None,
        on_row: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Train every spec through the one training path; each is kept as a run grouped under this ablation."""
        data, fingerprint = self.prepared(options.max_length), None
        group = f"ablation {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
        loop = options.loop_options() | {"eval_every": None}
        rows: list[dict] = []
        with self.replica() as loaded:
            self._check_room(loaded, [(spec, 1) for spec in specs], f"this ablation's {len(specs)} runs")
            fingerprint = self._fingerprint(data)
            for index, spec in enumerate(specs):
                if self.stop_event.is_set():
                    break
                report = (lambda event, index=index: on_progress(index, len(specs), event)) if on_progress else None
                if report:
                    report(None)
                config, timing = default_train_config(spec, **loop), StepTiming()  # this run's set-up starts now
                result, record = self._train_and_keep(loaded, data, spec, config, report, fingerprint, group, timing)
                rows.append(result_row(SessionRun(record).result, loaded.task))
                if on_row:
                    on_row(rows[-1])
        self.ablation_rows = rows
        return rows

    def sweep(self, specs: list[MethodSpec], config: SweepConfig, max_length: int, on_progress=None) -> SweepResult:
        """The library's learning-rate sweep on this job's replica; every point is kept as a run grouped under it.

        Each point trains the replica itself and is taken off it again (full fine-tuning trains a copy);
        ``stop()`` ends the sweep after the current point. ``sweep_points`` grows as points end.
        """
        data, group = self.prepared(max_length), f"sweep {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
        self.sweep_points = []
        with self.replica() as loaded:
            points = [(spec, len(config.rates_for(spec.entry))) for spec in specs]
            self._check_room(loaded, points, f"this sweep's {sum(count for _, count in points)} points")
            fingerprint = self._fingerprint(data)

            def keep(record: dict, run) -> None:
                label = f"{run.spec.label} · lr {short_number(record['learning_rate'])}"
                record["run_label"] = self.store.save(self.owner, run, loaded, fingerprint, group, label).label
                self.sweep_points.append(record)

            return run_sweep(loaded, data, specs, config, on_progress, self.stop_event, keep, finish_point=True)

    # ------------------------------------------------------------ generation

    def compare(
        self,
        prompt: str = "",
        example_index: int | None = None,
        labels: list[str] | None = None,
        settings: DecodingSettings | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,  # hears of each step: (done, total, what)
    ) -> Comparison:
        """The base model and each chosen run on one prompt, same decoding, in as few generate calls as possible."""
        loaded = self.loaded()
        if loaded.task != "causal-lm":
            raise ValueError("Compare generates text, so it needs a causal-lm model; this one classifies")
        formatted, reference = self._compare_prompt(loaded, prompt, example_index)
        chosen = [self.run(label) for label in (self.run_labels() if labels is None else labels)]
        runs = [SavedRun(run.label, run.record.path, run.spec) for run in chosen]
        with self.registry.base_lock(self.training_key()):
            batched = compare_batched(loaded.model, loaded.tokenizer, [formatted], runs, settings, on_progress)
        if reference:
            for generation in batched.generations:
                generation.reference, generation.rouge_l = reference, rouge_l(generation.text, reference)
        return Comparison(formatted, reference, batched.generations, batched)

    def _compare_prompt(self, loaded: LoadedModel, prompt: str, example_index: int | None) -> tuple[str, str | None]:
        if example_index is not None:
            examples = self.validation_examples()
            if not 0 <= example_index < len(examples):
                raise ValueError(f"validation example {example_index} does not exist (0..{len(examples) - 1})")
            return examples[example_index]
        if prompt.strip():
            return chat_prompt(loaded.tokenizer, prompt.strip()), None
        raise ValueError("type a prompt or pick a validation example")

    # ------------------------------------------------------------ files

    def folder(self) -> Path:
        """This session's private scratch folder (removed by ``close``)."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="red-explorer-"))
        return self._folder

    # ------------------------------------------------------------ inspection

    def red_edits(self, label: str) -> list[SiteEdit]:
        """The learned RED vectors of a run, per edited site, read from its files: a run of any base model."""
        run = self.any_run(label)
        if run.spec.method != "red":
            raise ValueError(f"{label} is a {run.spec.method.upper()} run; this view shows what RED runs learned")
        return site_edits(read_tensors(run.record.path))

    def tare_inspection(self, label: str, text: str) -> tuple[EditorMagnitudes, RoutingTable]:
        """A TARE run's editor magnitudes and the routing of ``text`` (token × site)."""
        from red_explorer.core.tare.routing import editor_magnitudes, tare_routing

        if self.run(label).spec.method != "tare":
            raise ValueError(f"{label} is not a TARE run: train TARE (Train tab) to see its routing")
        if not text.strip():
            raise ValueError("type a text to route through the TARE editors")
        tokenizer = self.loaded().tokenizer
        input_ids = tokenizer(text.strip(), return_tensors="pt", truncation=True, max_length=64)["input_ids"]
        tokens = [token.replace("Ġ", "·").replace("▁", "·") for token in tokenizer.convert_ids_to_tokens(input_ids[0])]
        with self.attached(label) as model:
            routing = tare_routing(model, input_ids.to(next(model.parameters()).device))
            magnitudes = editor_table(editor_magnitudes(model))
        return magnitudes, routing_table(routing, tokens)

    def close(self) -> None:
        """Stop any job and free what this session holds in memory; its runs stay kept on disk."""
        self.stop_event.set()
        with self._lock:
            self.ablation_rows = []
        if self.data is not None:
            self.data.release()
        self.data = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
