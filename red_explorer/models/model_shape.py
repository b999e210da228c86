"""A model's shape read from its config alone: sizes and parameter counts, with no weights downloaded or loaded."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, PretrainedConfig

from red_explorer.models import loading
from red_explorer.models.quantization import INT4_GROUP_SIZE


class ShapeUnavailable(ValueError):
    """A model's config cannot be read here (e.g. a hub id that is not in the local cache, offline)."""


@dataclass(frozen=True)
class ModelShape:
    """What memory depends on: the sizes of a transformer and how its parameters split by storage.

    ``linear_weights`` are the weights of the ``nn.Linear`` layers that a quantized load stores in 8 or 4
    bits (transformers' rule: every linear layer except the output head and tied weights), ``linear_rows``
    their output rows and ``linear_groups`` their groups of ``INT4_GROUP_SIZE`` inputs (one 4-bit scale each on CPU);
    ``other_parameters`` (embeddings, norms, biases, the output head) stay in the compute dtype.
    """

    name: str
    layers: int
    hidden_size: int
    intermediate_size: int
    attention_heads: int
    key_value_heads: int
    head_dim: int
    logit_width: int  # the vocabulary of a causal LM, the labels of a classifier
    task: str
    gated_ffn: bool  # gate and up projections (Llama's SwiGLU) rather than one up projection
    linear_weights: int
    linear_rows: int
    linear_groups: int
    other_parameters: int

    @property
    def total_parameters(self) -> int:
        return self.linear_weights + self.other_parameters


def _random_config(name: str) -> PretrainedConfig:
    from transformers import LlamaConfig

    from red_explorer.bench.setup import RANDOM_SHAPES

    if name not in RANDOM_SHAPES:
        raise ShapeUnavailable(f"unknown random model {name!r}; use one of {sorted(RANDOM_SHAPES)}")
    return LlamaConfig(**RANDOM_SHAPES[name])


def _default_causal_config() -> PretrainedConfig:
    """The embedded SmolLM2's config: from its converted folder, else from the GGUF's header (no weights read)."""
    folder = loading.cache_root() / loading.CACHE_SUBFOLDER
    if (folder / "config.json").exists():
        return AutoConfig.from_pretrained(folder)
    gguf_path = loading._installed_file(loading.SMOLLM2_DISTRIBUTION, loading.SMOLLM2_GGUF)
    if gguf_path is not None:
        return AutoConfig.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    return _cached_hub_config(loading.DEFAULT_CAUSAL_HUB_ID)


def _cached_hub_config(hub_id: str) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(hub_id, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise ShapeUnavailable(
            f"{hub_id!r} cannot be estimated offline: its config is not in the local Hugging Face cache "
            "(load it once, or pass a folder saved with save_pretrained)"
        ) from error


def model_config(spec: str, task: str = "causal-lm") -> PretrainedConfig:
    """The config of ``spec`` ('default', 'minilm', 'tiny', 'random:*', a folder or a cached hub id), read only."""
    if spec == "tiny" or spec.startswith("random:"):
        return _random_config(spec)
    if spec == "minilm" or (spec == "default" and task == "classification"):
        source = loading._default_encoder_source()  # the bundled folder, else the hub id
        return AutoConfig.from_pretrained(source) if Path(source).is_dir() else _cached_hub_config(source)
    if spec == "default":
        return _default_causal_config()
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith(("/", "./", "../", "~")):
        if not (path / "config.json").is_file():
            raise ShapeUnavailable(f"folder {spec!r} has no config.json; pass a folder written by save_pretrained")
        return AutoConfig.from_pretrained(path)
    return _cached_hub_config(spec)


def _skeleton(config: PretrainedConfig, task: str) -> nn.Module:
    """The model built on the meta device: every parameter's shape, no memory, no weights."""
    auto = AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM
    with torch.device("meta"):
        try:
            return auto.from_config(copy.deepcopy(config), trust_remote_code=False)
        except (ValueError, KeyError) as error:
            raise ShapeUnavailable(
                f"transformers cannot build a {config.model_type!r} {task} model: {error}"
            ) from error


def _quantized_linears(model: nn.Module) -> list[nn.Linear]:
    """The linear layers a quantized load converts (transformers' ``get_keys_to_not_convert`` names the others)."""
    from transformers.quantizers.base import get_keys_to_not_convert
    from transformers.quantizers.quantizers_utils import should_convert_module

    skipped = get_keys_to_not_convert(model) + list(getattr(model, "_keep_in_fp32_modules", None) or [])
    return [
        module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and should_convert_module(name, skipped)
    ]


def _size(config: PretrainedConfig, *names: str, default: int = 0) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def shape_from_config(config: PretrainedConfig, task: str = "causal-lm", name: str = "") -> ModelShape:
    """Sizes from ``config`` and parameter counts from a meta-device build of the model it describes."""
    model = _skeleton(config, task)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = _size(text, "hidden_size", "n_embd", "d_model")
    heads = _size(text, "num_attention_heads", "n_head", default=1)
    linears = _quantized_linears(model)
    linear_weights = sum(module.weight.numel() for module in linears)
    total = sum(parameter.numel() for parameter in model.parameters())
    return ModelShape(
        name=name or getattr(config, "name_or_path", "") or config.model_type,
        layers=_size(text, "num_hidden_layers", "n_layer", "num_layers"),
        hidden_size=hidden,
        intermediate_size=_size(text, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden),
        attention_heads=heads,
        key_value_heads=_size(text, "num_key_value_heads", default=heads),
        head_dim=_size(text, "head_dim", default=hidden // heads),
        logit_width=_size(text, "vocab_size") if task == "causal-lm" else _size(config, "num_labels", default=2),
        task=task,
        gated_ffn=any(name.endswith("gate_proj") for name, _ in model.named_modules()),
        linear_weights=linear_weights,
        linear_rows=sum(module.out_features for module in linears),
        linear_groups=sum(module.out_features * -(-module.in_features // INT4_GROUP_SIZE) for module in linears),
        other_parameters=total - linear_weights,
    )


def model_shape(spec: str, task: str = "causal-lm") -> ModelShape:
    """The shape of the model ``spec`` names, read from its config only (see ``model_config``)."""
    try:
        config = model_config(spec, task)
    except (OSError, ValueError) as error:
        if isinstance(error, ShapeUnavailable):
            raise
        raise ShapeUnavailable(f"the config of {spec!r} cannot be read: {error}") from error
    return shape_from_config(config, task, spec)
