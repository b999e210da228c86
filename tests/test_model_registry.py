"""The shared model registry: failed loads hold no slot and never evict a model that works."""

import threading

import pytest

from red_explorer.app.model_registry import ModelKey, ModelRegistry


def loader_failing_for(*bad_specs: str):
    """A loader that returns the spec's name, or raises for the specs in ``bad_specs``; it counts its calls."""
    calls = []

    def load(spec, *rest):
        calls.append(spec)
        if spec in bad_specs:
            raise ValueError(f"folder {spec!r} does not exist")
        return f"model {spec}"

    load.calls = calls
    return load


def test_a_failed_load_never_evicts_a_working_model():
    loader = loader_failing_for("typo", "missing")
    registry = ModelRegistry(capacity=1, loader=loader)
    assert registry.get(ModelKey("default")) == "model default"
    for bad in ("typo", "missing", "typo"):
        with pytest.raises(ValueError, match="does not exist"):
            registry.get(ModelKey(bad))
    assert registry.status(ModelKey("default")) == "ready"
    assert registry.loaded_keys() == [ModelKey("default").resolved()]
    assert registry.get(ModelKey("default")) == "model default" and loader.calls.count("default") == 1
    assert registry.status(ModelKey("typo")) == "failed: folder 'typo' does not exist"


def test_failures_take_no_slot_from_the_models_that_load():
    registry = ModelRegistry(capacity=2, loader=loader_failing_for("typo"))
    registry.get(ModelKey("a"))
    with pytest.raises(ValueError):
        registry.get(ModelKey("typo"))
    registry.get(ModelKey("b"))  # two working models fit in two slots, whatever failed in between
    assert [key.spec for key in registry.loaded_keys()] == ["a", "b"]
    registry.get(ModelKey("c"))  # a third working model evicts the least recently used one
    assert [key.spec for key in registry.loaded_keys()] == ["b", "c"]


def test_a_failed_load_is_retried_and_then_counts_as_loaded():
    attempts = []

    def flaky(spec, *rest):
        attempts.append(spec)
        if len(attempts) == 1:
            raise OSError("disk busy")
        return "model"

    registry = ModelRegistry(capacity=1, loader=flaky)
    with pytest.raises(OSError):
        registry.get(ModelKey("m"))
    assert registry.status(ModelKey("m")) == "failed: disk busy" and registry.loaded_keys() == []
    assert registry.get(ModelKey("m")) == "model" and registry.status(ModelKey("m")) == "ready"
    assert len(attempts) == 2


def test_a_load_in_progress_is_never_evicted_and_waiters_share_a_failure():
    release = threading.Event()

    def slow(spec, *rest):
        if spec == "slow":
            release.wait(5)
            raise ValueError("no such model")
        return spec

    registry = ModelRegistry(capacity=1, loader=slow)
    errors = []

    def wait_for_slow():
        try:
            registry.get(ModelKey("slow"))
        except ValueError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=wait_for_slow) for _ in range(3)]
    for thread in threads:
        thread.start()
    while registry.status(ModelKey("slow")) != "loading":
        threading.Event().wait(0.01)
    assert registry.get(ModelKey("fast")) == "fast"  # loads next to the load in progress
    assert registry.status(ModelKey("slow")) == "loading"
    release.set()
    for thread in threads:
        thread.join(5)
    assert errors == ["no such model"] * 3
    assert registry.loaded_keys() == [ModelKey("fast").resolved()]
