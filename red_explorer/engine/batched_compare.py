"""The base model and many saved runs generating in one ``generate`` call: per-row RED edits, PEFT adapters by name.

Row r of the batched call belongs to one contender: the base (the identity edit: scale 1, bias 0),
a RED run (its row of an ``EditBank``: RED_i(h) = scale_i ⊙ h + bias_i at every site), or a LoRA
run (PEFT's mixed-batch inference, ``adapter_names=``). Runs that cannot share that call (TARE, full
fine-tuning, RED runs of other sites than the batched ones) generate in calls of their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from red_explorer.core.checkpoint import read_record
from red_explorer.core.red.bank import EditBank, per_row_edits
from red_explorer.core.red.edit import attach_red, detach_red
from red_explorer.core.registry import MethodSpec, detect_method
from red_explorer.core.state import attached_state
from red_explorer.data.render import encode_prompt
from red_explorer.engine.generation import DecodingSettings, Generation
from red_explorer.engine.progress import OnProgress, PassCounter, TokenCounter
from red_explorer.runs.attach import attach_saved, release
from red_explorer.runs.record import RunRecord

BASE = "base"
WARMUP_TOKENS = 2
PEFT_BASE_ROW = "__base__"  # PEFT's adapter name for "no adapter" in adapter_names


@dataclass
class SavedRun:
    """A run to generate with: a label and the folder of its method files (a run-store run, an edits folder)."""

    label: str
    folder: Path
    spec: MethodSpec | None = None  # read from the folder when None

    @classmethod
    def of(cls, record: RunRecord) -> SavedRun:
        """A run kept in a ``RunStore`` (its label, folder and spec)."""
        return cls(record.label, record.path, record.method_spec)


@dataclass
class CallTiming:
    """One timed ``generate`` call: whose rows it held and how long it took."""

    labels: list[str]
    batched: bool
    rows: int
    new_tokens: int  # generated tokens summed over the rows (up to each row's end of sequence)
    seconds: float
    measured: str  # what exactly was timed, in words


@dataclass
class BatchedComparison:
    """Generations (per prompt: the base, then each run in the order given) and how they were computed."""

    generations: list[Generation]
    token_ids: list[list[int]]  # the new tokens of each generation, up to and including end of sequence
    batched: list[str]  # labels generated in the one shared call (the base among them)
    separate: dict[str, str]  # label -> why it had a call of its own
    calls: list[CallTiming] = field(default_factory=list)


@dataclass
class _Plan:
    red: list[SavedRun] = field(default_factory=list)
    lora: list[SavedRun] = field(default_factory=list)
    separate: dict[str, str] = field(default_factory=dict)


def _red_sites(run: SavedRun) -> tuple[str, ...] | None:
    """The modules a RED run edits, or None when it carries a classification head (heads cannot differ per row)."""
    record = read_record(run.folder)
    return None if record.get("head_parameters") else tuple(sorted(record.get("modules", [])))


def plan_batch(runs: Sequence[SavedRun]) -> _Plan:
    """Which runs share the batched call: RED runs of the most common site set, and every LoRA adapter."""
    plan, groups = _Plan(), {}
    methods = {run.label: run.spec.method if run.spec else detect_method(run.folder) for run in runs}
    for run in runs:
        sites = _red_sites(run) if methods[run.label] == "red" else None
        if sites is not None:
            groups.setdefault(sites, []).append(run)
    chosen = max(groups.values(), key=len) if groups else []
    for run in runs:
        method = methods[run.label]
        if run in chosen:
            plan.red.append(run)
        elif method == "lora":
            plan.lora.append(run)
        elif method == "red":
            plan.separate[run.label] = "edits other modules than the batched RED runs"
        else:
            plan.separate[run.label] = f"{method} runs cannot share a batch with per-row edits"
    return plan


def left_padded(tokenizer, prompts: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
    """The prompts tokenised and padded on the left to one length: input_ids and attention_mask, (P, T) each."""
    rows = [encode_prompt(tokenizer, prompt) for prompt in prompts]  # as training and generate_one encode them
    if not rows or not all(rows):
        raise ValueError("give at least one non-empty prompt")
    pad = _pad_id(tokenizer)
    width = max(len(row) for row in rows)
    input_ids = torch.tensor([[pad] * (width - len(row)) + row for row in rows], device=device)  # (P, T)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)  # (P, T)
    return {"input_ids": input_ids, "attention_mask": mask}


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _generate_kwargs(settings: DecodingSettings, tokenizer, fixed_length: bool) -> dict:
    if settings.compile:
        raise ValueError(
            "compiled generation decodes one prompt per call: compare with compare_generations, or leave compile off"
        )
    kwargs = settings.generate_kwargs() | {"pad_token_id": _pad_id(tokenizer)}
    if fixed_length:  # every row produces exactly max_new_tokens tokens: equal work for timing
        kwargs["min_new_tokens"] = settings.max_new_tokens
    return kwargs


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def timed_generate(
    model: nn.Module,
    inputs: dict,
    kwargs: dict,
    seed: int,
    warmup: bool,
    extra: dict | None = None,
    streamer: TokenCounter | None = None,
) -> tuple[torch.Tensor, float]:
    """(output ids (B, T + new), seconds of the timed call); a short untimed warm-up call first.

    ``streamer`` hears of each step of the timed call (not of the warm-up)."""
    extra = extra or {}
    device = inputs["input_ids"].device
    if warmup:
        short = kwargs | {"max_new_tokens": WARMUP_TOKENS}
        short.pop("min_new_tokens", None)
        model.generate(**inputs, **short, **extra)
    torch.manual_seed(seed)
    _synchronize(device)
    started = time.perf_counter()
    output = model.generate(**inputs, **kwargs, **extra, **({"streamer": streamer} if streamer else {}))
    _synchronize(device)
    return output, time.perf_counter() - started


def _trimmed(row: torch.Tensor, end_ids: set[int]) -> list[int]:
    tokens = row.tolist()
    for index, token in enumerate(tokens):
        if token in end_ids:
            return tokens[: index + 1]
    return tokens


def _end_ids(model: nn.Module, tokenizer) -> set[int]:
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured]) | {tokenizer.eos_token_id}
    return {token for token in ids if token is not None}


@contextmanager
def _batched_model(model: nn.Module, plan: _Plan, prompts: int) -> Iterator[tuple[nn.Module, list[str], dict]]:
    """The model set up for one call whose rows are: base, the RED runs, the LoRA runs (each × ``prompts``)."""
    labels = [BASE] + [run.label for run in plan.red] + [run.label for run in plan.lora]
    extra: dict = {}
    with ExitStack() as stack:
        target = model
        if plan.red:
            bank = _bank_with_identity(model, plan.red)
            attach_red(model, bank.red_config())
            stack.callback(detach_red, model)
            rows = [0] + list(range(1, len(plan.red) + 1)) + [0] * len(plan.lora)
            stack.enter_context(per_row_edits(model, bank, torch.tensor(rows).repeat_interleave(prompts)))
        if plan.lora:
            target = _load_adapters(model, plan.lora)
            stack.callback(target.unload)
            names = [PEFT_BASE_ROW] * (1 + len(plan.red)) + [f"run{index}" for index in range(len(plan.lora))]
            extra["adapter_names"] = [name for name in names for _ in range(prompts)]
        yield target, labels, extra


def _bank_with_identity(model: nn.Module, runs: list[SavedRun]) -> EditBank:
    """The runs' RED vectors stacked, with the identity edit (scale 1, bias 0) as row 0 for the base."""
    bank = EditBank.from_directories(model, [run.folder for run in runs])
    scales = {site: torch.cat([torch.ones_like(s[:1]), s]) for site, s in bank.scales.items()}  # (N + 1, H)
    biases = {site: torch.cat([torch.zeros_like(b[:1]), b]) for site, b in bank.biases.items()}  # (N + 1, H)
    return EditBank(bank.site_names, scales, biases, [BASE] + [run.label for run in runs])


def _load_adapters(model: nn.Module, runs: list[SavedRun]) -> nn.Module:
    from peft import PeftModel

    wrapped = PeftModel.from_pretrained(model, str(runs[0].folder), adapter_name="run0")
    for index, run in enumerate(runs[1:], start=1):
        wrapped.load_adapter(str(run.folder), adapter_name=f"run{index}")
    return wrapped.eval()


@contextmanager
def _own_model(model: nn.Module, run: SavedRun | None) -> Iterator[nn.Module]:
    """The base itself, or one run attached to it (a full run loaded from disk) for the length of the block."""
    if run is None:
        yield model
        return
    trained, spec = attach_saved(model, run.folder, run.spec)
    try:
        yield trained
    finally:
        release(trained, spec)


@dataclass
class _Caller:
    """Runs timed generate calls on groups of prompts and collects each contender's new tokens per prompt."""

    kwargs: dict
    seed: int
    warmup: bool
    end_ids: set[int]
    counter: PassCounter = field(default_factory=lambda: PassCounter(0))  # one pass per decoding step
    tokens: dict[str, dict[int, list[int]]] = field(default_factory=dict)  # label -> prompt index -> new ids
    seconds: dict[str, float] = field(default_factory=dict)  # label -> seconds of its calls, summed

    def call(
        self, model: nn.Module, inputs: dict, group: list[int], labels: list[str], batched: bool, extra: dict
    ) -> CallTiming:
        """One call on the prompts ``group`` (their ``inputs``, (P, T) each) for every contender in ``labels``."""
        prompts, width = inputs["input_ids"].shape
        rows = {key: value.repeat(len(labels), 1) for key, value in inputs.items()}  # (C·P, T), contender-major
        streamer = self._announce(labels)
        output, seconds = timed_generate(model, rows, self.kwargs, self.seed, self.warmup, extra, streamer)
        for index, label in enumerate(labels):
            block = output[index * prompts : (index + 1) * prompts, width:]  # (P, new)
            self.tokens.setdefault(label, {}).update(
                zip(group, (_trimmed(row, self.end_ids) for row in block), strict=True)
            )
            self.seconds[label] = self.seconds.get(label, 0.0) + seconds
        new_tokens = sum(len(self.tokens[label][prompt]) for label in labels for prompt in group)
        return CallTiming(labels, batched, len(labels) * prompts, new_tokens, seconds, self._measured(labels, prompts))

    def _announce(self, labels: list[str]) -> TokenCounter | None:
        """Tell that a call for 'base + 3 runs' (or its one contender) starts; what counts its steps, if heard."""
        most, others = self.kwargs["max_new_tokens"], len(labels) - 1
        who = f"{labels[0]} + {others} run{'s' if others > 1 else ''}" if others else labels[0]
        self.counter.tell(f"generating up to {most} tokens for {who}")
        return TokenCounter(self.counter, who, most) if self.counter.on_progress else None

    def _measured(self, labels: list[str], prompts: int) -> str:
        text = (
            f"wall time of one generate call of {len(labels) * prompts} rows ({len(labels)} contenders × {prompts} "
            f"prompts), up to {self.kwargs['max_new_tokens']} new tokens per row"
        )
        if "min_new_tokens" in self.kwargs:
            text += " (every row exactly that many)"
        if self.warmup:
            text += f", after one untimed {WARMUP_TOKENS}-token warm-up call on the same rows"
        return text + "; loading and attaching the runs is not timed"


def prompt_groups(tokenizer, prompts: Sequence[str], settings: DecodingSettings) -> list[list[int]]:
    """The prompt indices that share a call: all of them, padded on the left, unless decoding reads the context.

    ``no_repeat_ngram_size`` and ``repetition_penalty`` count every token of a row, the padding too, so a
    padded row (where the pad token is the end of sequence, its end) decodes differently from its prompt
    alone: then prompts of one token length share a call, unpadded, and each other length has calls of its own.
    """
    if not settings.no_repeat_ngram_size and settings.repetition_penalty == 1.0:
        return [list(range(len(prompts)))]
    groups: dict[int, list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(len(encode_prompt(tokenizer, prompt)), []).append(index)
    return list(groups.values())


def compare_batched(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    runs: Sequence[SavedRun],
    settings: DecodingSettings | None = None,
    on_progress: OnProgress | None = None,
    batch: bool = True,
    warmup: bool = True,
    fixed_length: bool = False,
) -> BatchedComparison:
    """Generate with the base and every run on every (already formatted) prompt, in as few calls as possible.

    ``model`` is the plain base: it is edited for the length of the call and restored after, so no
    other thread may use it meanwhile. Prompts are padded on the left to one length (where decoding counts
    the padding, each length has calls of its own: ``prompt_groups``); each call is timed after a short
    warm-up (``warmup``). Greedy decoding gives the same tokens as one call per run and prompt; sampled
    rows draw from one random stream, so their draws differ from separate calls.
    ``batch=False`` gives every contender (the base too) a call of its own: the sequential reference.
    ``on_progress(done, total, what)`` hears of each decoding step: ``max_new_tokens`` passes per call.
    """
    settings = settings or DecodingSettings()
    _check_inputs(model, runs)
    device = next(model.parameters()).device
    caller = _Caller(_generate_kwargs(settings, tokenizer, fixed_length), settings.seed, warmup, set())
    caller.end_ids = _end_ids(model, tokenizer)
    plan = plan_batch(runs) if batch else _Plan(separate={run.label: "batching turned off" for run in runs})
    by_label, alone = {run.label: run for run in runs}, ([] if batch else [BASE]) + list(plan.separate)
    groups = prompt_groups(tokenizer, prompts, settings)  # each has a shared call (when batched) and one per alone
    caller.counter = PassCounter(len(groups) * (int(batch) + len(alone)) * settings.max_new_tokens, on_progress)
    calls, batched = [], []
    for group in groups:
        inputs = left_padded(tokenizer, [prompts[index] for index in group], device)
        if batch:
            with _batched_model(model, plan, len(group)) as (target, labels, extra):
                calls.append(caller.call(target, inputs, group, labels, True, extra))
                batched = labels
        for label in alone:
            with _own_model(model, by_label.get(label)) as target:
                calls.append(caller.call(target, inputs, group, [label], False, {}))
    caller.counter.finish()
    generations, token_ids = _generations(tokenizer, prompts, [BASE, *by_label], caller)
    return BatchedComparison(generations, token_ids, batched, plan.separate, calls)


def _check_inputs(model: nn.Module, runs: Sequence[SavedRun]) -> None:
    labels = [run.label for run in runs]
    if BASE in labels or len(set(labels)) != len(labels):
        raise ValueError(f"run labels must be distinct and not {BASE!r}, got {labels}")
    if attached_state(model) is not None or hasattr(model, "peft_config"):
        raise ValueError("compare_batched needs the plain base model: detach the edits or adapters it carries")


def _generations(tokenizer, prompts, labels, caller: _Caller) -> tuple[list[Generation], list[list[int]]]:
    generations, token_ids = [], []
    for index, prompt in enumerate(prompts):
        for label in labels:
            ids, seconds = caller.tokens[label][index], caller.seconds[label]
            text = tokenizer.decode(ids, skip_special_tokens=True).strip()
            rate = len(ids) / seconds if seconds else 0.0
            generations.append(Generation(label, prompt, text, len(ids), seconds, rate))
            token_ids.append(ids)
    return generations, token_ids
