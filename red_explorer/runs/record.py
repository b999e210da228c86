"""What a kept run records about itself (run.json): its base model, method, training, data and histories."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from red_explorer.core.registry import MethodSpec

if TYPE_CHECKING:
    from red_explorer.data.prepared import PreparedData
    from red_explorer.models.loading import LoadedModel

RECORD_VERSION = 1
CHUNK = 1 << 20


@dataclass
class BaseModelKey:
    """The base model a run belongs to: the spec as given, its real name, task, labels, dtype and quantization.

    ``quantize`` is the quantization the run was trained on (None, "8bit", "4bit"); its edits load on
    the same base quantized otherwise too, within the difference quantization makes to the base.
    """

    spec: str  # "default", "minilm", a folder or a hub id, as the user gave it
    base_name: str  # LoadedModel.base_name: the hub id of an embedded default
    task: str
    num_labels: int | None
    dtype: str  # "float32", "bfloat16", "float16"
    quantize: str | None = None  # what the run was trained on: None (not quantized), "8bit", "4bit"

    @classmethod
    def of(cls, loaded: LoadedModel) -> BaseModelKey:
        num_labels = getattr(loaded.model.config, "num_labels", None) if loaded.task == "classification" else None
        dtype = str(loaded.dtype).removeprefix("torch.")
        return cls(loaded.name, loaded.base_name, loaded.task, num_labels, dtype, loaded.quantize)


@dataclass
class RunRecord:
    """One kept run, as ``<root>/<owner>/<id>/run.json`` holds it; ``path`` is that folder (not stored).

    ``method_bytes`` is the size of the method's own files (edits, adapter or checkpoint); ``steps``
    the optimizer steps that ran (the length of ``loss_history``); ``setup_seconds`` and ``seconds_per_step``
    the time before its first step and of a steady step (None when not measured, e.g. a run kept before).
    """

    id: str
    label: str
    owner: str
    created: str  # UTC, ISO 8601
    group: str | None  # e.g. the id of the ablation that trained it
    base: BaseModelKey
    spec: dict  # MethodSpec.to_dict()
    train_config: dict
    data: dict | None  # data_fingerprint(...)
    loss_history: list[float]
    eval_history: list[dict]
    method_bytes: int
    files: list[str]  # the method's files in the run folder
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    trainable_parameters: int = 0
    train_seconds: float = 0.0
    stopped_reason: str = ""
    setup_seconds: float | None = None
    seconds_per_step: float | None = None
    format_version: int = RECORD_VERSION
    path: Path | None = field(default=None, compare=False)

    @property
    def method_spec(self) -> MethodSpec:
        return MethodSpec.from_dict(self.spec)

    @property
    def method(self) -> str:
        return self.spec.get("method", "red")

    @property
    def steps(self) -> int:
        return len(self.loss_history)

    @property
    def learning_rate(self) -> float | None:
        return self.train_config.get("learning_rate")

    def to_dict(self) -> dict:
        """The content of run.json (without ``path``)."""
        record = asdict(self)
        record.pop("path")
        return record

    @classmethod
    def from_dict(cls, data: dict, path: Path | None = None) -> RunRecord:
        """Read a run.json; unknown keys are kept out, missing required ones raise a ValueError."""
        known = {item.name for item in fields(cls)} - {"path"}
        values = {key: value for key, value in data.items() if key in known}
        if not isinstance(values.get("base"), dict):
            raise ValueError("run.json has no 'base' section")
        values["base"] = BaseModelKey(**values["base"])
        try:
            return cls(**values, path=path)
        except TypeError as error:
            raise ValueError(f"run.json is incomplete: {error}") from error


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(
    path: str | Path, data: PreparedData | None = None, validation_path: str | Path | None = None
) -> dict:
    """Which data a run was trained on: the file's name, size and sha256, and the rows per split.

    ``data`` (the prepared data) gives the train and validation row counts after cleaning and
    splitting, and the DataConfig it was read with (``config``: max length, split, seed); a separate
    validation file is fingerprinted too.
    """
    path = Path(path)
    record: dict = {"name": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    if data is not None:
        record["rows"] = {split: int(data.raw[split].num_rows) for split in ("train", "validation")}
        if getattr(data, "config", None) is not None:
            record["config"] = data.config.to_dict()
    if validation_path is not None:
        record["validation"] = data_fingerprint(validation_path)
    return record
