"""Shared pytest setup: offline, quiet environment, one private run store and fair CPU share per worker, markers."""

import os
import tempfile

import pytest

for _name, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "RED_EXPLORER_HOME": tempfile.mkdtemp(prefix="red-explorer-home-"),  # runs kept by tests stay out of ~/.cache
}.items():
    os.environ.setdefault(_name, _value)

_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # set in each parallel worker (pytest -n, see pytest.ini)
if _WORKER:
    import torch

    os.environ["RED_EXPLORER_HOME"] = tempfile.mkdtemp(prefix=f"red-explorer-home-{_WORKER}-")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


def pytest_configure(config):
    config.addinivalue_line("markers", "real_model: loads real pretrained weights (slower; still runs in CI)")
    config.addinivalue_line("markers", "browser: drives the app in headless Chromium with Playwright (slow)")


@pytest.fixture(scope="session")
def default_model():
    """The real embedded default model, loaded once for the suite; tests deep-copy it before editing it."""
    from red_explorer.models.loading import load_model

    return load_model("default", device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The app tests' tiny model folder and data file (``app_helpers.tiny_app_files``); a module may override it."""
    from app_helpers import tiny_app_files

    return tiny_app_files(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-model tests, where more threads only contend."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def forking_spaces(monkeypatch):
    """ZeroGPU hardware whose ``spaces`` package is ``fake_spaces.FakeSpaces`` (forked, reused, pickling workers)."""
    import sys

    from fake_spaces import FakeSpaces

    fake = FakeSpaces()
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", fake)
    yield fake
    fake.close()


@pytest.fixture
def fresh_app_url(tmp_path, monkeypatch):
    """The app launched in this process on a free port, with a home of its own and no model loaded yet."""
    from app_helpers import free_port

    from red_explorer.app.ui import build_demo
    from red_explorer.app.ui.interface import launch_options

    monkeypatch.setenv("RED_EXPLORER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SPACE_ID", raising=False)
    demo = build_demo(preload=False)
    demo.queue(default_concurrency_limit=4).launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options()
    )
    yield demo.local_url
    demo.close()
