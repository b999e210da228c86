"""One-minute demos: a bundled sample, the methods trained on it, the settings, and what shows the change."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from red_explorer.app.options import APP_DECODING, TrainOptions
from red_explorer.app.workbench import Workbench
from red_explorer.core.registry import MethodSpec
from red_explorer.data.bundled import SAMPLE_FOLDER
from red_explorer.engine.generation import DecodingSettings
from red_explorer.engine.training import StepEvent

Report = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)
OnEvent = Callable[[str, object], None]  # (method label, a training event): e.g. a live loss curve
SETUP_SHARE, GENERATION_SHARE = 0.1, 0.1  # of the progress bar: model + data, and the first generation


@dataclass(frozen=True)
class DemoPreset:
    """A bundled sample, the methods to train on it with a few steps, and the prompt whose answer shows the change.

    Causal-LM presets end with the base and every trained run on ``prompt`` (one batched greedy call);
    classification presets show validation accuracy before (base) and after (each run).
    """

    name: str
    model: str  # a model choice of the Model tab: "default" or "minilm"
    task: str  # "causal-lm" or "classification"
    sample: str  # a file in red_explorer/samples/
    methods: tuple[MethodSpec, ...]
    options: TrainOptions
    point: str  # one sentence: what to look at afterwards
    prompt: str = ""  # causal-lm: the prompt that shows the change
    max_rows: int | None = None  # rows read from the sample (fewer rows: a quicker validation pass)
    validation_fraction: float = 0.1
    max_new_tokens: int = 32
    learning_rates: dict[str, float] = field(default_factory=dict)  # per method name, else the method's usual one
    measured_seconds: float | None = None  # end to end on an idle 2-core CPU (benchmarks/cpu-demo-presets.json)

    def __post_init__(self) -> None:
        if self.task not in ("causal-lm", "classification"):
            raise ValueError(f"a demo's task is causal-lm or classification, got {self.task!r}")
        if not (SAMPLE_FOLDER / self.sample).is_file():
            raise ValueError(f"no bundled sample {self.sample!r}: pick a file of {SAMPLE_FOLDER}")
        if not self.methods:
            raise ValueError(f"demo {self.name!r} trains no method: give at least one MethodSpec")
        if self.task == "causal-lm" and not self.prompt.strip():
            raise ValueError(f"causal-lm demo {self.name!r} needs a prompt whose answer shows the change")

    def train_options(self, spec: MethodSpec, max_steps: int | None = None) -> TrainOptions:
        """The preset's options with the method's learning rate (and ``max_steps`` when given, e.g. 2 in tests)."""
        rate = self.learning_rates.get(spec.method, self.options.learning_rate)
        return replace(self.options, learning_rate=rate, max_steps=max_steps or self.options.max_steps)

    @property
    def steps(self) -> int:
        """Training steps in all, over every method."""
        return sum(self.train_options(spec).max_steps for spec in self.methods)

    def estimate(self) -> str:
        """What it does and how long it took where measured: '2 methods × 9 steps; 43 s on an idle 2-core CPU'."""
        steps = {self.train_options(spec).max_steps for spec in self.methods}
        count = len(self.methods)
        work = f"{count} methods × {steps.pop()} steps" if count > 1 and len(steps) == 1 else f"{self.steps} steps"
        if self.measured_seconds is None:
            return work
        return f"{work}; {self.measured_seconds:.0f} s on an idle 2-core CPU"

    def decoding(self) -> DecodingSettings:
        """The app's decoding (``APP_DECODING``: Compare's defaults) with the preset's ``max_new_tokens``."""
        return replace(APP_DECODING, max_new_tokens=self.max_new_tokens)


RED_FFN = MethodSpec("red", variant="full", sites=["ffn"])
PRESETS = {
    "style": DemoPreset(
        name="Teach it a style",
        model="default",
        task="causal-lm",
        sample="pirate_style.jsonl",
        methods=(RED_FFN, MethodSpec("lora", rank=8, alpha=16)),
        options=TrainOptions(epochs=1.0, max_steps=9, batch_size=2, max_length=64, eval_every=None),
        learning_rates={"red": 5e-2, "lora": 9e-3},  # best at 9 steps: benchmarks/method_choice/demo_budget
        measured_seconds=43,
        max_new_tokens=24,
        prompt="What is the capital of France?",
        max_rows=100,
        point="RED (34,560 numbers) answers in pirate speak (“Arr! …”) after 9 steps of 2 examples; see how far "
        "LoRA r=8 (460,800 numbers) got in the same steps.",
    ),
    "data-to-text": DemoPreset(
        name="Data to text",
        model="default",
        task="causal-lm",
        sample="restaurants_e2e.csv",
        methods=(RED_FFN,),
        options=TrainOptions(epochs=1.0, max_steps=14, batch_size=2, max_length=96, eval_every=None),
        learning_rates={"red": 5e-2},
        measured_seconds=36,
        prompt="name[The Golden Curry] | eatType[restaurant] | food[Indian] | priceRange[cheap] | area[riverside]",
        max_rows=100,
        point="The base model comments on the fields; after RED it writes one sentence about the restaurant.",
    ),
    "sentiment": DemoPreset(
        name="Classify sentiment",
        model="minilm",
        task="classification",
        sample="sentiment.csv",
        methods=(RED_FFN,),
        options=TrainOptions(epochs=1.0, max_steps=30, batch_size=16, max_length=64, eval_every=None),
        learning_rates={"red": 5e-2},
        measured_seconds=7,
        validation_fraction=0.2,
        point="Validation accuracy of the base (an untrained head) against RED's: edit and head learn the task.",
    ),
}


@dataclass
class DemoOutcome:
    """What a demo did: its runs (by label), the seconds of each stage, and the first generation (causal-lm)."""

    preset: DemoPreset
    labels: list[str]
    seconds: dict[str, float]  # stage → wall seconds: "load model", "load data", "set up <label>", "train <label>", …
    metrics: dict[str, tuple[dict, dict]]  # label → (validation metrics before, after)
    generation: object = None  # causal-lm: what ``generate`` returned (a Comparison by default)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def _timed(seconds: dict[str, float], stage: str, call: Callable, *args):
    """``call(*args)``, its wall seconds kept in ``seconds[stage]``."""
    started = time.perf_counter()
    result = call(*args)
    seconds[stage] = time.perf_counter() - started
    return result


def _train(workbench: Workbench, preset: DemoPreset, spec: MethodSpec, options, progress: tuple, on_event, seconds):
    """Train one method of the demo: the bar moves over the training share as steps finish, across all methods.

    Its seconds are two stages: "set up <label>" (up to the first step: the training copy of the base, attaching
    the method, the validation loss before training) and "train <label>" (the steps and the last validation).
    """
    report, done, total = progress
    share, label = 1.0 - SETUP_SHARE - GENERATION_SHARE, spec.label
    started, first_step = time.perf_counter(), []

    def callback(event) -> None:
        if isinstance(event, StepEvent):
            if not first_step:
                first_step.append(time.perf_counter() - getattr(event, "seconds", 0.0))
            fraction = SETUP_SHARE + share * (done + event.step) / total
            report(fraction, f"training {label}: step {event.step}/{event.total_steps}, loss {event.loss:.3f}")
        if on_event is not None:
            on_event(label, event)

    report(
        SETUP_SHARE + share * done / total,
        f"setting up {label}: a copy of the base to train, the validation loss before",
    )
    run = workbench.train(spec, options, callback, preset.name)
    ended = time.perf_counter()
    set_up = (first_step[0] if first_step else ended) - started
    seconds[f"set up {label}"], seconds[f"train {label}"] = set_up, ended - started - set_up
    return run


def run_preset(
    workbench: Workbench,
    preset: DemoPreset,
    report: Report | None = None,
    model: str | None = None,
    max_steps: int | None = None,
    generate: Callable[[list[str]], object] | None = None,
    on_event: OnEvent | None = None,
) -> DemoOutcome:
    """Load the model (kept when already loaded) and the sample, train each method, then the first generation.

    ``model`` replaces the preset's model (a folder, e.g. a tiny model in tests); ``max_steps`` its steps.
    ``generate(labels)`` makes the first generation (default: ``Workbench.compare`` of the base and the runs
    on the preset's prompt with ``preset.decoding()``); ``on_event(label, event)`` sees every training event.
    """
    report = report or (lambda fraction, text: None)
    seconds: dict[str, float] = {}
    report(0.0, f"loading the model ({model or preset.model})")
    workbench.data = None  # the preset brings its own sample: the session's data is not re-read for the new model
    _timed(seconds, "load model", workbench.load_model, model or preset.model, preset.task)
    report(SETUP_SHARE / 2, f"loading the sample {preset.sample}")
    path, rows = SAMPLE_FOLDER / preset.sample, preset.max_rows
    _timed(seconds, "load data", workbench.load_data, path, preset.validation_fraction, rows, preset.sample)
    workbench.new_job()
    total = sum(preset.train_options(spec, max_steps).max_steps for spec in preset.methods)
    labels, metrics, done = [], {}, 0
    for spec in preset.methods:
        options = preset.train_options(spec, max_steps)
        run = _train(workbench, preset, spec, options, (report, done, total), on_event, seconds)
        labels.append(run.label)
        metrics[run.label] = (run.result.metrics_before, run.result.metrics_after)
        done += options.max_steps
    outcome = DemoOutcome(preset, labels, seconds, metrics)
    if preset.task == "causal-lm":
        report(1.0 - GENERATION_SHARE, "generating with the base and each run")
        generate = generate or (lambda labels: workbench.compare(preset.prompt, None, labels, preset.decoding()))
        outcome.generation = _timed(seconds, "first generation", generate, labels)
    report(1.0, f"done in {outcome.total_seconds:.0f} s")
    return outcome
