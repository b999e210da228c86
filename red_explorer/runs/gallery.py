"""The gallery: ready-made runs on the embedded default models, shipped with the package and listed read-only.

The runs are a run store's folders (``<package>/gallery/gallery/<run id>/``), so everything that reads a kept
run reads them. Each folder also holds ``gallery.json``: the recipe (sample, method, settings, seed), the
validation metric the run recorded and how to measure it again, and showcase prompts with the base's and the
run's recorded answers. ``scripts/make_gallery.py`` builds them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from red_explorer.data.bundled import SAMPLE_FOLDER
from red_explorer.runs.record import RunRecord
from red_explorer.runs.store import RunStore

if TYPE_CHECKING:
    from red_explorer.models.loading import LoadedModel

GALLERY_OWNER = "gallery"  # the owner folder of the shipped runs
GALLERY_FILE = "gallery.json"  # recipe, recorded metric and showcase of one gallery run
CONTROL_VECTOR_FILE = "control_vector.gguf"  # a bias-only gallery run's llama.cpp control vector
LEAD_RUN = "Pirate style · RED"  # the gallery run a page with no runs of its own opens on


def gallery_root() -> Path:
    """The folder of the shipped gallery store (found through importlib.resources, as installed)."""
    return Path(str(resources.files("red_explorer") / "gallery"))


@dataclass
class Showcase:
    """One showcase prompt with the base's and the run's recorded answers (a label for classification)."""

    prompt: str
    base: str
    run: str


@dataclass
class GalleryEntry:
    """What ``gallery.json`` says about one gallery run."""

    title: str
    about: str
    recipe: dict  # model, task, sample, max_rows, validation_fraction, method, train settings, seed
    check: dict  # metric, value, sample, max_rows, validation_fraction, max_length, batch_size
    decoding: str = ""  # the showcase's decoding in words ('' for classification)
    decoding_settings: dict = field(default_factory=dict)  # DecodingSettings' fields, to generate the same live
    showcase: list[Showcase] = field(default_factory=list)

    @classmethod
    def read(cls, folder: Path) -> GalleryEntry:
        data = json.loads((Path(folder) / GALLERY_FILE).read_text())
        data["showcase"] = [Showcase(**item) for item in data.get("showcase", [])]
        return cls(**data)


def gallery_runs(root: Path | None = None) -> list[RunRecord]:
    """The shipped gallery runs, oldest first (none when the package carries no gallery); read once per root."""
    return list(_read_gallery(root or gallery_root()))


@lru_cache(maxsize=4)
def _read_gallery(folder: Path) -> tuple[RunRecord, ...]:
    if not (folder / GALLERY_OWNER).is_dir():
        return ()
    runs = RunStore(folder).list(GALLERY_OWNER)
    return tuple(record for record in runs if (record.path / GALLERY_FILE).is_file())


def gallery_entry(record: RunRecord) -> GalleryEntry:
    return GalleryEntry.read(record.path)


def recipe_data_config(record: RunRecord) -> dict | None:
    """The data settings (``DataConfig``'s fields) a gallery run was trained with, from its recipe; None for a run
    that is not the gallery's or that trained nothing (a composed edit)."""
    if record.path is None or not (record.path / GALLERY_FILE).is_file():
        return None
    recipe = gallery_entry(record).recipe
    if "sample" not in recipe:
        return None
    return {
        "task": recipe["task"],
        "max_length": int(recipe["train"]["max_length"]),
        "validation_fraction": float(recipe["validation_fraction"]),
        "seed": int(recipe.get("split_seed", 0)),
        "max_rows": recipe.get("max_rows"),
    }


def validation_batches(check: dict, loaded: LoadedModel) -> list[dict]:
    """The validation batches a gallery run's metric was measured on: its sample, split and batch size."""
    from red_explorer.data.prepared import prepare_data
    from red_explorer.data.tables import DataConfig

    config = DataConfig(
        task=loaded.task,
        max_length=int(check["max_length"]),
        validation_fraction=float(check["validation_fraction"]),
        max_rows=check.get("max_rows"),
    )
    data = prepare_data(SAMPLE_FOLDER / check["sample"], loaded.tokenizer, config)
    return data.validation_batches(int(check["batch_size"]))


def measure(record: RunRecord, loaded: LoadedModel, check: dict | None = None) -> float:
    """The run's validation metric measured again from its saved files on ``loaded`` (its base model)."""
    from red_explorer.engine.evaluation import evaluate
    from red_explorer.runs.attach import attach_saved, release

    check = check or gallery_entry(record).check
    batches = validation_batches(check, loaded)
    model, spec = attach_saved(loaded.model, record.path, record.method_spec)
    try:
        return float(evaluate(model, batches, loaded.task)[check["metric"]])
    finally:
        release(model, spec)
