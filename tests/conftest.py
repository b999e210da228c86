"""Shared pytest setup: offline, quiet environment and the `real_model` marker."""

import os

for _name, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "NO_PROXY": "127.0.0.1,localhost",
}.items():
    os.environ.setdefault(_name, _value)


def pytest_configure(config):
    config.addinivalue_line("markers", "real_model: loads real pretrained weights (slower; still runs in CI)")
    config.addinivalue_line("markers", "browser: drives the app in headless Chromium with Playwright (slow)")
