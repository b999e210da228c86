"""Memory a base model will need, before it is loaded: weights in each precision, RED training, generation.

All figures come from a ``ModelShape`` (the config alone). Weights: parameters × bytes of the precision;
a quantized load stores the linear layers' weights in 8 or 4 bits with their scales, as bitsandbytes (CUDA)
or torchao (CPU) does, and keeps the rest in the compute dtype. RED training adds, per token of the batch,
what autograd saves for backward with the base frozen and RED on every FFN output (measured on Llama-family
blocks, see ``saved_bytes_per_token``), the logits and their gradients at the loss, and RED's vectors with
their gradient and AdamW's two moments. On the default model (SmolLM2-135M, CPU, 8 × 128 tokens) a real
step's peak resident memory is 1.11 × this estimate in float32 and 1.13 × in bfloat16. Generation adds the
KV cache of the batch at full length, one layer's prefill and the last logits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from red_explorer.models.model_shape import ModelShape
from red_explorer.models.quantization import INT4_GROUP_SIZE

PRECISIONS = ("float32", "bfloat16", "8bit", "4bit")
FLOAT_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
NF4_BLOCK = 64  # bitsandbytes 4-bit: one absmax per 64 weights, itself stored in 8 bits (double quantization)
NF4_SECOND_BLOCK = 256  # one float32 absmax per 256 first-level blocks


def backend_of(device: torch.device | str) -> str | None:
    """Which library stores quantized weights on ``device``: bitsandbytes (CUDA), torchao (CPU), else none."""
    kind = torch.device(device).type
    return {"cuda": "bitsandbytes", "cpu": "torchao"}.get(kind)


def weight_bytes(shape: ModelShape, precision: str, compute_dtype: str = "bfloat16", backend: str = "torchao") -> int:
    """Bytes of the weights stored in ``precision`` ("float32", "bfloat16", "float16", "8bit", "4bit")."""
    if precision in FLOAT_BYTES:
        return shape.total_parameters * FLOAT_BYTES[precision]
    compute = FLOAT_BYTES[compute_dtype]
    kept = shape.other_parameters * compute
    linear, rows, groups = shape.linear_weights, shape.linear_rows, shape.linear_groups
    if precision == "8bit":  # int8 values; a float32 scale per row (torchao also an int8 zero point)
        return kept + linear + rows * (4 if backend == "bitsandbytes" else 5)
    if precision != "4bit":
        raise ValueError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
    if backend == "bitsandbytes":  # NF4: two values a byte, 8-bit absmax per block, float32 per 256 blocks
        return kept + linear // 2 + -(-linear // NF4_BLOCK) + 4 * -(-linear // (NF4_BLOCK * NF4_SECOND_BLOCK))
    return kept + linear + groups * (compute + 1)  # torchao int4: a byte per value, a scale + zero point per group


def saved_bytes_per_token(shape: ModelShape, value_bytes: int) -> int:
    """Bytes autograd saves per token with the base frozen and RED on every FFN output (Llama-style blocks).

    Per layer: the FFN's gate, up and activated values (two for an ungated FFN), queries and attention
    output, keys and values, RED's input, in the compute dtype; each RMSNorm's float32 input; attention's
    log-sum-exp per head and the norms' reciprocal scales in float32. The first layer keeps only RED's input
    (nothing before its edit needs a gradient); the final norm's float32 input and the float32 log-softmax
    of the logits come on top. Measured with ``bench.timing.SavedTensorMeter``: within 2 % on SmolLM2's shape.
    """
    queries = shape.attention_heads * shape.head_dim
    keys = shape.key_value_heads * shape.head_dim
    ffn = (3 if shape.gated_ffn else 2) * shape.intermediate_size
    layer = value_bytes * (ffn + 2 * queries + 2 * keys + shape.hidden_size)
    layer += 2 * 4 * shape.hidden_size + 4 * shape.attention_heads + 2 * 4
    first_layer = value_bytes * shape.hidden_size
    head = 4 * shape.hidden_size + (4 * shape.logit_width if shape.task == "causal-lm" else 0)
    return (shape.layers - 1) * layer + first_layer + head


@dataclass(frozen=True)
class TrainingEstimate:
    """Peak bytes of one RED training step: weights + RED state + saved activations + the logits at the loss."""

    weights: int
    red_state: int  # RED's float32 vectors, their gradients and AdamW's two moments
    activations: int
    loss_logits: int  # at the loss's backward: the logits and two float32 gradients (of the log-softmax, its input)
    dequantized: int = 0  # torchao: each quantized linear after the first edit saves its weight dequantized

    @property
    def total(self) -> int:
        return self.weights + self.red_state + self.activations + self.loss_logits + self.dequantized


def training_estimate(
    shape: ModelShape,
    weights: int,
    compute_dtype: str,
    batch_size: int,
    max_length: int,
    saves_dequantized: bool = False,
) -> TrainingEstimate:
    """A ``TrainingEstimate`` for RED (scale and bias on every FFN output) at ``batch_size`` × ``max_length``.

    ``saves_dequantized``: the base's linear layers are torchao-quantized, whose backward keeps each weight
    dequantized in the compute dtype (all layers but the first: nothing before the first edit needs a gradient).
    """
    value_bytes = FLOAT_BYTES[compute_dtype]
    tokens = batch_size * max_length
    red_parameters = 2 * shape.layers * shape.hidden_size
    scored = tokens if shape.task == "causal-lm" else batch_size
    later_layers = shape.linear_weights * (shape.layers - 1) // max(shape.layers, 1)
    return TrainingEstimate(
        weights=weights,
        red_state=4 * 4 * red_parameters,
        activations=tokens * saved_bytes_per_token(shape, value_bytes),
        loss_logits=scored * shape.logit_width * (value_bytes + 8),
        dequantized=later_layers * value_bytes if saves_dequantized else 0,
    )


def generation_bytes(shape: ModelShape, weights: int, compute_dtype: str, batch_size: int, max_length: int) -> int:
    """Weights + the KV cache of ``batch_size`` rows at ``max_length`` tokens + one layer's prefill + last logits.

    A classifier keeps no cache: its figure is one forward pass (inference).
    """
    value_bytes = FLOAT_BYTES[compute_dtype]
    tokens = batch_size * max_length
    cache = (
        0
        if shape.task != "causal-lm"
        else 2 * shape.layers * shape.key_value_heads * shape.head_dim * value_bytes * tokens
    )
    prefill = tokens * value_bytes * (2 * shape.intermediate_size + 4 * shape.hidden_size)
    return weights + cache + prefill + batch_size * shape.logit_width * (value_bytes + 4)


def available_memory(device: torch.device | str) -> tuple[int, str]:
    """(bytes free for a model, what they are): CUDA's free memory, else the system's available RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except RuntimeError as error:  # e.g. a ZeroGPU Space outside a GPU grant
            raise ValueError(
                f"CUDA's free memory cannot be read here ({error}); give the memory to plan for"
            ) from error
        return int(free), f"free on {torch.cuda.get_device_name(device)}"
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available system RAM"
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free system RAM"


@dataclass(frozen=True)
class PlanRow:
    """One precision: its bytes for weights, RED training and generation, and whether each fits."""

    precision: str
    compute_dtype: str
    weights: int
    training: int
    generation: int
    fits_training: bool
    fits_generation: bool
    use: str = "generation"  # what the figure without training is: "generation", or "inference" for a classifier

    @property
    def verdict(self) -> str:
        if self.fits_training:
            return "fits"
        return f"fits for {self.use} only" if self.fits_generation else "does not fit"


@dataclass(frozen=True)
class MemoryPlan:
    """What a model needs in each precision at one batch size and length, against one device's memory."""

    shape: ModelShape
    batch_size: int
    max_length: int
    device: str
    backend: str | None
    available: int
    available_what: str
    rows: tuple[PlanRow, ...]


def plan_memory(
    shape: ModelShape,
    batch_size: int,
    max_length: int,
    device: torch.device | str = "cpu",
    available: int | None = None,
    compute_dtype: str = "bfloat16",
) -> MemoryPlan:
    """The memory ``shape`` needs in float32, bfloat16, 8 and 4 bits on ``device``, and whether each fits.

    ``available`` overrides the device's free memory (``available_memory``); ``compute_dtype`` is the dtype
    of activations and unquantized weights in the 8- and 4-bit rows. Quantized rows need CUDA or CPU.
    """
    if batch_size < 1 or max_length < 1:
        raise ValueError(f"batch size and max length must be positive, got {batch_size} and {max_length}")
    if compute_dtype not in FLOAT_BYTES:
        raise ValueError(f"unknown compute dtype {compute_dtype!r}; use one of {sorted(FLOAT_BYTES)}")
    device = torch.device(device)
    what = "given"
    if available is None:
        available, what = available_memory(device)
    backend, rows = backend_of(device), []
    precisions = PRECISIONS if backend else PRECISIONS[:2]
    use = "generation" if shape.task == "causal-lm" else "inference"
    for precision in precisions:
        dtype = precision if precision in FLOAT_BYTES else compute_dtype
        weights = weight_bytes(shape, precision, dtype, backend or "torchao")
        dequantized = precision not in FLOAT_BYTES and backend == "torchao"
        training = training_estimate(shape, weights, dtype, batch_size, max_length, dequantized).total
        generation = generation_bytes(shape, weights, dtype, batch_size, max_length)
        rows.append(
            PlanRow(
                precision, dtype, weights, training, generation, training <= available, generation <= available, use
            )
        )
    return MemoryPlan(shape, batch_size, max_length, device.type, backend, available, what, tuple(rows))


def _gib(value: int) -> str:
    if value >= 2**30:
        return f"{value / 2**30:,.2f} GiB"
    return f"{value / 2**20:,.1f} MiB" if value >= 2**20 else f"{value / 2**10:,.0f} KiB"


def precision_label(row: PlanRow) -> str:
    if row.precision in FLOAT_BYTES:
        return row.precision
    return f"{row.precision.removesuffix('bit')}-bit ({row.compute_dtype} compute)"


def plan_markdown(plan: MemoryPlan, chosen: str | None = None) -> str:
    """The plan as a markdown table, one row per precision, with a ✓/✗ verdict against the device's memory;
    the row of the ``chosen`` precision (e.g. "bfloat16", "4bit") in bold, marked as the current choice."""
    shape = plan.shape
    size = f"{plan.batch_size} × {plan.max_length} tokens"
    lines = [
        f"**{shape.name}**: {shape.total_parameters:,} parameters ({shape.layers} layers, hidden {shape.hidden_size}); "
        f"{plan.device}: {_gib(plan.available)} {plan.available_what}.",
        "",
        f"| precision | weights | RED training ({size}) | {plan.rows[0].use} ({size}) | on this {plan.device} |",
        "|---|---|---|---|---|",
    ]
    for row in plan.rows:
        mark = "✓" if row.fits_training else ("◐" if row.fits_generation else "✗")
        label = f"**{precision_label(row)}** (your choice)" if row.precision == chosen else precision_label(row)
        lines.append(
            f"| {label} | {_gib(row.weights)} | {_gib(row.training)} | {_gib(row.generation)} | {mark} {row.verdict} |"
        )
    if plan.backend:
        lines += ["", quantized_note(plan)]
    return "\n".join(lines)


def quantized_note(plan: MemoryPlan) -> str:
    """One sentence under the table: how the quantized rows' library stores 8 and 4 bits, and why its figures are
    what they are (on CPU, torchao's 4 bits outweigh its 8 and both train in more memory than no quantizing)."""
    if plan.backend == "bitsandbytes":
        return f"8 and 4 bits as bitsandbytes stores them on {plan.device} (NF4 with double quantization in 4 bits)."
    compute = plan.rows[-1].compute_dtype
    return (
        f"On {plan.device}, torchao stores 8- and 4-bit weights a byte per value (4 bits add a scale and a zero point "
        f"per {INT4_GROUP_SIZE} weights, so they come out a little larger than 8) and keeps embeddings and norms in "
        f"{compute}; a training step also holds a {compute} copy of each quantized weight for its backward pass, so "
        f"here 8 and 4 bits need more memory to train than {compute} without quantizing."
    )
