"""The gallery of ready-made runs shipped with the package: found as package data, complete, and reproducible."""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from red_explorer.runs.gallery import (
    CONTROL_VECTOR_FILE,
    GALLERY_OWNER,
    gallery_entry,
    gallery_root,
    gallery_runs,
    measure,
)
from red_explorer.runs.store import folder_bytes

ROOT = Path(__file__).resolve().parents[1]


def by_title() -> dict:
    return {gallery_entry(record).title: record for record in gallery_runs()}


def test_the_gallery_is_found_through_importlib_resources_and_shipped_as_package_data():
    folder = resources.files("red_explorer") / "gallery" / GALLERY_OWNER
    assert folder.is_dir() and Path(str(folder)) == gallery_root() / GALLERY_OWNER
    shipped = [path for path in gallery_root().rglob("*") if path.is_file()]
    assert len(gallery_runs()) == 8
    assert {path.relative_to(gallery_root()).parts[0] for path in shipped} == {GALLERY_OWNER}
    assert all(len(path.relative_to(gallery_root()).parts) == 3 for path in shipped)  # gallery/<run id>/<file>
    assert folder_bytes(gallery_root()) < 5_000_000
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "gallery/*/*/*" in package_data["red_explorer"]


def test_every_kind_of_edit_the_gallery_promises_is_there_with_its_recipe():
    runs = by_title()
    methods = {title: record.spec["method"] for title, record in runs.items()}
    assert methods == {
        "Pirate style · RED": "red",
        "Pirate style · LoRA r=8": "lora",
        "Pirate style · TARE": "tare",
        "Pirate style · RED bias only (control vector)": "red",
        "Formal register · RED": "red",
        "Data to text · RED": "red",
        "Sentiment · RED on MiniLM": "red",
        "Formal, then pirate · composed": "red",
    }
    bias = runs["Pirate style · RED bias only (control vector)"]
    assert bias.spec["variant"] == "bias" and (bias.path / CONTROL_VECTOR_FILE).stat().st_size > 10_000
    assert runs["Sentiment · RED on MiniLM"].base.spec == "minilm"
    assert runs["Sentiment · RED on MiniLM"].base.task == "classification"
    composed = gallery_entry(runs["Formal, then pirate · composed"]).recipe["derived"]
    assert composed["operation"] == "compose"
    assert composed["parts"] == ["Formal register · RED", "Pirate style · RED"]
    for title, record in runs.items():
        entry = gallery_entry(record)
        assert record.group == "Gallery" and record.label == title
        assert len(entry.showcase) >= 2 and all(item.prompt and item.run for item in entry.showcase)
        if "derived" not in entry.recipe:
            assert entry.recipe["train"]["seed"] == 0 and entry.recipe["sample"] == entry.check["sample"]
            assert entry.recipe["method"] == record.spec
            assert entry.check["value"] == pytest.approx(record.metrics_after[entry.check["metric"]])
        if record.base.task == "causal-lm":
            assert entry.decoding.startswith("greedy") and entry.decoding_settings["do_sample"] is False


def test_the_register_sample_pairs_plain_questions_with_formal_answers():
    path = ROOT / "red_explorer" / "samples" / "formal_register.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 150
    assert all(row["output"].split()[0] in ("Certainly.", "Indeed.", "With", "Allow", "Of") for row in rows)
    assert "formal_register.jsonl" in (path.parent / "README.md").read_text()


@pytest.mark.real_model
def test_each_gallery_run_reproduces_its_recorded_validation_metric_from_its_files():
    from red_explorer.models.loading import load_model

    models = {}
    for record in gallery_runs():
        base = record.base
        key = (base.spec, base.task, base.num_labels)
        if key not in models:
            models[key] = load_model(base.spec, task=base.task, num_labels=base.num_labels, device="cpu")
        check = gallery_entry(record).check
        assert measure(record, models[key], check) == pytest.approx(check["value"], rel=1e-4, abs=1e-5), record.label
