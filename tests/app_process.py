"""The app as a person runs it: `python app.py` in a process of its own, started and stopped by the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from app_helpers import save_tiny_llama, tiny_rows, write_csv


def start_app(home: Path, port: int, log: Path) -> subprocess.Popen:
    """``python app.py`` in a process of its own on ``home`` (what a person runs), once it answers."""
    root = Path(__file__).resolve().parents[1]
    env = {
        name: value for name, value in os.environ.items() if name not in ("GRADIO_SERVER_NAME", "RED_EXPLORER_SECRET")
    }
    env |= {"RED_EXPLORER_HOME": str(home), "RED_EXPLORER_PRELOAD": "0", "PORT": str(port), "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=root, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise AssertionError(f"the app did not start: {log.read_text()[-2000:]}")


def stop_app(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tiny_edits_zip(folder: Path) -> tuple[Path, Path]:
    """A tiny Llama folder and the edits zip of a RED run trained on it (kept in a scratch store)."""
    from red_explorer.app.model_registry import ModelRegistry
    from red_explorer.app.options import TrainOptions
    from red_explorer.app.workbench import Workbench
    from red_explorer.core.registry import MethodSpec
    from red_explorer.runs.store import RunStore

    model = save_tiny_llama(folder / "model")
    bench = Workbench(ModelRegistry(), store=RunStore(folder / "scratch"))
    bench.load_model(str(model))
    bench.load_data(write_csv(folder / "words.csv", tiny_rows(40)))
    run = bench.train(MethodSpec("red"), TrainOptions(max_steps=1, max_length=64, batch_size=8, eval_every=None))
    archive = shutil.copy(bench.export_edits_zip(run.label), folder / "edits.zip")
    bench.close()
    return model, Path(archive)
