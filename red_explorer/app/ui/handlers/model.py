"""Model tab: choose and load the base model; see its shape, where RED edits it, and what each method trains."""

from __future__ import annotations

from html import escape

from red_explorer.app.demo_presets import PRESETS, SETUP_SHARE, DemoOutcome, run_preset
from red_explorer.app.model_info import ModelInfo
from red_explorer.app.model_registry import ModelKey
from red_explorer.app.plots import empty_figure, parameter_figure
from red_explorer.app.ui.diagram import block_style, responsive_svg
from red_explorer.app.ui.handlers import compare as compare_handlers
from red_explorer.app.ui.handlers.common import (
    EXPECTED_ERRORS,
    Choices,
    colour_to_be,
    colours,
    count,
    follow,
    no_progress,
    run_choices,
    status_html,
    stream,
)
from red_explorer.app.ui.handlers.counting import TimeLeft
from red_explorer.app.ui.handlers.navigation import UNCHANGED, SelectTab
from red_explorer.app.ui.handlers.train import LiveCurves
from red_explorer.app.ui.session import Session, open_sessions
from red_explorer.models.loading import resolve_device, resolve_dtype
from red_explorer.models.memory_plan import plan_markdown, plan_memory
from red_explorer.models.model_shape import model_shape

MINILM = "MiniLM encoder (all-MiniLM-L6-v2)"
SMOLLM = "SmolLM2-135M-Instruct"


def model_name(spec: str, task: str) -> str:
    """What a model choice means: "default" is SmolLM2 for causal-lm and MiniLM for classification."""
    if spec == "minilm" or (spec == "default" and task == "classification"):
        return f"{spec} = {MINILM}"
    return f"default = {SMOLLM}" if spec == "default" else spec


def info_markdown(info: ModelInfo) -> str:
    """The model at a glance, as a small table."""
    lines = [
        f"### {info.architecture} · `{model_name(info.spec, info.task)}`",
        "| property | value |",
        "|---|---|",
        f"| family | {info.family} ({info.model_type}) |",
        f"| layers | {info.num_layers} |",
        f"| hidden size | {info.hidden_size} |",
        f"| FFN size | {info.intermediate_size or '–'} |",
        f"| parameters | {info.total_parameters:,} ({count(info.total_parameters)}) |",
        f"| device · dtype | {info.device} · {info.dtype}{_weights(info.quantize)} |",
        *_red_rows(info),
    ]
    lines += [f"\n> **Note:** {note}" for note in info.notes]
    return "\n".join(lines)


def _red_rows(info: ModelInfo) -> list[str]:
    """Where RED edits this model and how many numbers it learns (the attention output on an all-experts model)."""
    if not info.ffn_module:
        red = info.parameter_counts["RED (attention)"]
        where = f"`{info.attn_module.replace('.0.', '.{i}.')}` output (no FFN output is dense)"
    else:
        red = info.parameter_counts["RED (FFN)"]
        where = f"`{info.ffn_module.replace('.0.', '.{i}.')}` output"
    layers = info.edited_layers if info.ffn_module else info.num_layers
    reached = layers if layers == info.num_layers else f"{layers} of {info.num_layers}"
    return [
        f"| RED edits | {where}, {reached} layers |",
        f"| RED parameters | 2 × {info.hidden_size} × {layers} = **{red:,}** "
        f"({100 * red / info.total_parameters:.3g}% of the model) |",
    ]


def diagram_html(info: ModelInfo, sites: tuple[str, ...] = ("ffn",), activation: str | None = None) -> str:
    """The loaded family's block (pre- or post-norm, gated or plain FFN), wide and stacked for narrow screens."""
    ffn = info.ffn_module.split(".0.", 1)[-1] or "experts"
    attn = info.attn_module.split(".0.", 1)[-1]
    style = block_style(info.family, activation)
    edited = ffn if info.ffn_module else attn
    sites = sites if info.ffn_module else ("attn",)
    caption = (
        f"One of {info.num_layers} blocks ({style.description}). RED learns scale and bias "
        f"({info.hidden_size} values each) on the output of {edited}, before the residual add."
    )
    svg = responsive_svg(sites=sites, ffn_module=ffn, attn_module=attn, style=style)
    return f'<div class="red-diagram">{svg}<p class="red-caption">{escape(caption)}</p></div>'


def activation_name(config) -> str | None:
    """The FFN activation a model config names (``hidden_act`` or GPT-2's ``activation_function``)."""
    return getattr(config, "hidden_act", None) or getattr(config, "activation_function", None)


def _activation(session: Session) -> str | None:
    return activation_name(session.workbench.loaded().model.config)


def _weights(quantize: str | None) -> str:
    return f" · weights stored in {quantize.removesuffix('bit')} bits" if quantize else ""


def load_model(session: Session, spec: str, task: str, device: str, dtype: str, quantize: str = "none"):
    """Load (or reuse) the base model: (summary, block diagram, parameter chart, status line).

    A model that cannot be loaded leaves the session on its current model; the error says which.
    """
    workbench = session.workbench
    try:
        info = workbench.load_model(spec or "default", task, device, dtype, quantize)
    except EXPECTED_ERRORS as error:
        raise ValueError(f"{spec or 'default'} was not loaded: {error} {_still_using(session)}") from error
    figure = parameter_figure(info.parameter_counts, info.total_parameters, "Trainable parameters per method")
    return info_markdown(info), diagram_html(info, activation=_activation(session)), figure, model_status(session)


def memory_plan(
    spec: str, task: str, device: str, dtype: str, batch_size: float, max_length: float, quantize: str = "none"
) -> str:
    """Before loading: what the chosen model needs in float32, bfloat16, 8 and 4 bits (weights, RED training at
    ``batch_size`` × ``max_length``, generation) and whether each fits the device's free memory, as a table; the
    row of the current choice (``quantize``, else the dtype) stands out.

    ``dtype`` is the compute dtype of the 8- and 4-bit rows ("auto": what loading would pick on the device).
    """
    try:
        where = resolve_device(device or "auto")
        compute = str(resolve_dtype(dtype or "auto", where)).removeprefix("torch.")
        shape = model_shape(spec or "default", task)
        plan = plan_memory(shape, int(batch_size or 1), int(max_length or 1), where, compute_dtype=compute)
    except EXPECTED_ERRORS as error:
        return f"*Cannot be estimated: {escape(str(error))}.*"
    return plan_markdown(plan, quantize if quantize in ("8bit", "4bit") else compute)


def _still_using(session: Session) -> str:
    key = session.workbench.key
    return f"This session still uses {model_name(key.spec, key.task)} ({key.task})."


def _kept(choice: str, active: str, resolve) -> str:
    """The user's device/dtype choice when it means the active one (e.g. "auto" → cpu), else the active one."""
    try:
        return choice if resolve(choice) == active else active
    except ValueError:
        return active


NOT_LOADED = "*{name} is not loaded yet: press **Load model** (or a demo above).*"
LOADING = "*◌ {name} is loading{why}: its summary appears here when it is ready.*"
DEMO_JOB = "demo"  # the job a demo runs as (Session.running): it loads the model itself


def _loading(session: Session, status: str) -> bool:
    """Whether the model is on its way: loading now, or about to be loaded by the demo that runs."""
    return status == "loading" or (session.job == DEMO_JOB and status == "not loaded")


def _why(session: Session) -> str:
    return " for the demo" if session.job == DEMO_JOB else ""


def _panels(session: Session, head: str = "") -> tuple:
    """(summary, diagram, chart) of the model in use; while it is not ready, a line saying it loads or how to."""
    workbench = session.workbench
    status = workbench.model_status()
    if status != "ready":
        key = workbench.key
        line = LOADING if _loading(session, status) else NOT_LOADED
        text = head + line.format(name=model_name(key.spec, key.task), why=_why(session))
        return text, "", empty_figure("Load a model to see what each method trains")
    info = workbench.model_info()
    figure = parameter_figure(info.parameter_counts, info.total_parameters, "Trainable parameters per method")
    return head + info_markdown(info), diagram_html(info, activation=_activation(session)), figure


def show_model(session: Session) -> tuple:
    """The Model tab opened: (summary, diagram, chart) of the model in use now, as the header line says it; still
    with the page load's note on restoring it while that model is the one in use."""
    restored, note = session.restore_note
    return _panels(session, note if restored == session.workbench.key else "")


def restore_last(session: Session):
    """Page load: the model and data this browser's owner last loaded, loaded again (kept in their folder of the run
    store), and the Model tab showing the model in use.

    Returns (summary, diagram, chart, status, model, task, device, dtype, quantize).
    """
    workbench, head = session.workbench, ""
    try:
        choice = workbench.restore_last()
    except EXPECTED_ERRORS as error:
        choice, head = None, f"> ✕ **Your last model or data was not loaded again: {escape(str(error))}**\n\n"
    if choice is not None and choice.data_name and workbench.data is not None:
        head = f"> Restored your last model and data ({escape(choice.data_name)}).\n\n"
    key = workbench.key
    session.restore_note = (key, head)
    shown = (*_panels(session, head), model_status(session))
    return (*shown, key.spec, key.task, key.device, key.dtype, key.quantize or "none")


def restore_after_failure(session: Session, spec: str, task: str, device: str, dtype: str, quantize: str = "none"):
    """After a refused load: the active model's summary, diagram, chart, status and the controls set back to it.

    Returns (summary, diagram, chart, status, model, task, device, dtype, quantize).
    """
    workbench = session.workbench
    key = workbench.key
    failed = f"> ✕ **{escape(session.last_error or 'The model was not loaded.')}**\n\n"
    *shown, figure = _panels(session, failed)
    device = _kept(device, key.device, lambda value: ModelKey(device=value).resolved().device)
    dtype = _kept(dtype, key.dtype, lambda value: ModelKey(device=key.device, dtype=value).resolved().dtype)
    return (*shown, figure, model_status(session), key.spec, key.task, device, dtype, key.quantize or "none")


def model_status(session: Session) -> str:
    """One line: which base model this session uses and whether it is ready."""
    workbench = session.workbench
    key = workbench.key
    status = workbench.model_status()
    if _loading(session, status):
        status = f"loading{_why(session)}"
    icon = {"ready": "●", "not loaded": "○"}.get(status, "◌" if status.startswith("loading") else "✕")
    where = "" if key.device == "auto" else f" on {key.device}"
    note = " (loads on first use)" if status == "not loaded" else ""
    sessions = open_sessions()
    others = f" · {sessions} open sessions" if sessions > 1 else ""
    return f"{icon} Base model **{model_name(key.spec, key.task)}** ({key.task}){where}: {status}{note}{others}"


def demo_buttons() -> list[tuple[str, str]]:
    """(button text, preset key) of every one-minute demo."""
    return [(preset.name, key) for key, preset in PRESETS.items()]


def demo_estimates() -> str:
    """Each demo's steps and measured time, shown before a click; a busy machine takes longer, a GPU less."""
    parts = [f"**{preset.name}**: {preset.estimate()}" for preset in PRESETS.values()]
    return " · ".join(parts) + " (a busy machine takes longer; the bar shows the time left)."


def _metric_table(outcome: DemoOutcome) -> list[str]:
    """Per run: validation loss (and accuracy for classification) of the base and after training."""
    classifies = outcome.preset.task == "classification"
    head = "| run | val loss base → run |" + (" accuracy base → run |" if classifies else "")
    lines = [head, "|---|---|" + ("---|" if classifies else "")]
    for label, (before, after) in outcome.metrics.items():
        row = f"| {label} | {before['loss']:.3f} → **{after['loss']:.3f}** |"
        if classifies:
            row += f" {before['accuracy']:.1%} → **{after['accuracy']:.1%}** |"
        lines.append(row)
    return lines


def demo_markdown(outcome: DemoOutcome) -> str:
    """What the demo did: the runs' figures, the seconds of each stage, and where to look next."""
    preset = outcome.preset
    stages = " · ".join(f"{stage} {seconds:.1f} s" for stage, seconds in outcome.seconds.items())
    where = "the generations are in **Compare**" if outcome.generation else "the accuracy above is the result"
    return "\n".join(
        [
            f"### {preset.name}: done in {outcome.total_seconds:.0f} s",
            *_metric_table(outcome),
            "",
            f"{preset.point} ({where}; every run is kept: Inspect, Explore and Export take it too).",
            "",
            f"*Seconds:* {stages}.",
        ]
    )


DEMO_OUTPUTS = 14  # demo result, loss curves, summary, diagram, chart, status, model, task, tab, Compare's five


class _DemoProgress:
    """What the demo's thread reports (fraction, stage, loss curves) and the page's thread shows."""

    def __init__(self, session: Session, preset):
        self.session, self.workbench, self.fraction = session, session.workbench, 0.0
        self.stage = f"{preset.name}: starting ({preset.estimate()}; the bar shows the time left once it trains)"
        self.live, self.recorders = LiveCurves(), {}
        self.methods = {spec.label: spec.method for spec in preset.methods}
        self.left = TimeLeft(after=SETUP_SHARE)  # loading the model and sample has no steady pace
        self.model_shown: str | None = None  # the model status line the page shows now

    def report(self, fraction: float, text: str) -> None:
        self.left.report(fraction)
        self.fraction, self.stage = fraction, text

    @property
    def text(self) -> str:
        """The stage, with the time left (counted at each redraw, also between a slow CPU's steps)."""
        left = self.left.text() if self.fraction < 1.0 else None
        return f"{self.stage} · {left}" if left else self.stage

    def on_event(self, label: str, event) -> None:
        """A training event of ``label``: its curve, drawn in the colour its run will keep."""
        if label not in self.recorders:
            colour = colour_to_be(self.workbench, self.methods[label])
            self.recorders[label] = self.live.recorder(label, colour)
            self.live.data[label] = self.workbench.data.name  # the demo's sample, loaded before training
        self.recorders[label](event)

    def outputs(self, progress, model: bool = True) -> tuple:
        """The demo's status and curves; with ``model``, the Model tab's panels and status line when they changed."""
        progress(self.fraction, desc=self.text)
        shown = (status_html(f"**{self.text}**", self.fraction), self.live.figure("Loss curves appear as steps end"))
        panels = self.model_panels() if model else (UNCHANGED,) * 4
        return shown + panels + (UNCHANGED,) * (DEMO_OUTPUTS - 6)

    def model_panels(self) -> tuple:
        """(summary, diagram, chart, status line) as the model is now (loading for the demo, then ready), or
        unchanged while its status line is."""
        status = model_status(self.session)
        if status == self.model_shown:
            return (UNCHANGED,) * 4
        self.model_shown = status
        return (*_panels(self.session), status)

    def final_figure(self, preset, labels: list[str]):
        """The curves under the kept runs' labels, with the validation loss before and after each run."""
        fixed = colours(self.workbench)
        for spec, label in zip(preset.methods, labels, strict=True):
            self.live.add_endpoints(self.workbench.run(label), fixed[label], spec.label)
        return self.live.figure()


def run_demo(session: Session, key: str, progress=no_progress):
    """One click on a demo (its key or its button text): load its model and sample, train, show the change.

    Yields (demo status, live loss curves, then the rest unchanged) while it runs; at the end (demo result, loss
    curves, model summary, diagram, parameter chart, status, model choice, task, tab to show, Compare's prompt,
    runs, prompt shown, cards, table); a classification demo leaves Compare as it is.
    """
    by_name = {preset.name: preset for preset in PRESETS.values()}
    preset = PRESETS.get(key) or by_name.get(key)
    if preset is None:
        raise ValueError(f"unknown demo {key!r}: pick one of {', '.join(by_name)}")
    workbench, shown = session.workbench, _DemoProgress(session, preset)

    def generate(labels: list[str]):  # Compare's outputs, made by Compare's own handler
        settings = preset.decoding()
        return compare_handlers.compare(
            session, preset.prompt, None, labels, settings.max_new_tokens, False, 1.0, settings.repetition_penalty
        )

    def call():
        return run_preset(workbench, preset, shown.report, generate=generate, on_event=shown.on_event)

    with session.running(DEMO_JOB):  # the status line says the demo loads the model, not that nobody has
        yield shown.outputs(progress, model=False)  # at once: what it is doing (the model changes in the thread)
        outcome = yield from stream(follow(workbench, call), lambda: shown.outputs(progress))
    progress(1.0, desc=f"done in {outcome.total_seconds:.0f} s")
    info = workbench.model_info()
    figure = parameter_figure(info.parameter_counts, info.total_parameters, "Trainable parameters per method")
    result = (demo_markdown(outcome), shown.final_figure(preset, outcome.labels), info_markdown(info))
    result += (diagram_html(info, activation=_activation(session)), figure, model_status(session), preset.model)
    result += (preset.task,)
    if outcome.generation is None:
        yield (*result, UNCHANGED, UNCHANGED, UNCHANGED, UNCHANGED, UNCHANGED, UNCHANGED)
        return
    listed = run_choices(workbench, other_models=False)
    runs = Choices(listed.choices, outcome.labels, listed.names)
    yield (*result, SelectTab("compare"), preset.prompt, runs, *outcome.generation)
