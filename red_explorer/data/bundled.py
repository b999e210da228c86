"""The sample datasets that ship inside the package (red_explorer/samples/)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_FOLDER = Path(__file__).resolve().parents[1] / "samples"
TRAINING_SAMPLE = SAMPLE_FOLDER / "restaurants_e2e.csv"
