"""The store's owners for its operator: `runs owners` lists them, `runs prune` removes idle visitors only when asked."""

from __future__ import annotations

import os
import time

import pytest
import torch
from test_run_store import trained_result
from tiny_models import tiny_model, tiny_tokenizer

from red_explorer.cli.main import main
from red_explorer.core.registry import MethodSpec
from red_explorer.models.loading import LoadedModel
from red_explorer.runs.owners import idle_visitors, owner_usages
from red_explorer.runs.shares import ShareNotFoundError, Shares
from red_explorer.runs.store import RunStore, folder_bytes

OLD_VISITOR, NEW_VISITOR = "a" * 32, "b" * 32
DAY = 24 * 3600


def _age(folder, days: float) -> None:
    stamp = time.time() - days * DAY
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (stamp, stamp))


@pytest.fixture
def store(tmp_path) -> RunStore:
    """Two runs of an old visitor (one shared by link), one of a new visitor, of the CLI and of the gallery."""
    tokenizer = tiny_tokenizer(["red blue green cat dog"] * 4, chat=False)
    loaded = LoadedModel(tiny_model("llama"), tokenizer, "tiny-llama", "causal-lm", torch.device("cpu"), torch.float32)
    result = trained_result(loaded, MethodSpec("red"))
    store = RunStore(tmp_path / "runs")
    for owner, runs in ((OLD_VISITOR, 2), (NEW_VISITOR, 1), ("local", 1), ("gallery", 1)):
        for _ in range(runs):
            store.save(owner, result, loaded, None)
    store.shared_token = Shares(store).create(OLD_VISITOR, store.list(OLD_VISITOR)[0].id).token
    for owner in (OLD_VISITOR, "local", "gallery"):
        _age(store.root / owner, 10)
    return store


def test_every_owner_is_listed_with_its_runs_bytes_and_last_write(store):
    usages = {usage.owner: usage for usage in owner_usages(store)}
    assert set(usages) == {OLD_VISITOR, NEW_VISITOR, "local", "gallery"}
    assert next(iter(usages)) == OLD_VISITOR  # the largest first
    assert {owner: usage.runs for owner, usage in usages.items()} == {
        OLD_VISITOR: 2,
        NEW_VISITOR: 1,
        "local": 1,
        "gallery": 1,
    }
    assert all(usage.bytes == folder_bytes(store.root / owner) > 0 for owner, usage in usages.items())
    assert 9.9 < (usages[NEW_VISITOR].last_write - usages[OLD_VISITOR].last_write).total_seconds() / DAY < 10.1
    assert [usage.owner for usage in idle_visitors(store, 5)] == [OLD_VISITOR]  # named owners are never idle
    with pytest.raises(ValueError, match="idle days must be positive, got 0"):
        idle_visitors(store, 0)


def test_prune_lists_first_and_deletes_only_with_yes(store, capsys):
    home = ["--home", str(store.root.parent)]
    assert main(["runs", "prune", "--idle-days", "5", *home]) == 0
    assert "1 visitors idle for 5 days or more" in capsys.readouterr().out
    assert len(store.list(OLD_VISITOR)) == 2
    assert main(["runs", "prune", "--idle-days", "5", "--yes", *home]) == 0
    assert "deleted 1 visitors' folders" in capsys.readouterr().out
    assert not (store.root / OLD_VISITOR).exists() and list(store.root.glob(".deleting-*")) == []
    assert [len(store.list(owner)) for owner in (NEW_VISITOR, "local", "gallery")] == [1, 1, 1]
    with pytest.raises(ShareNotFoundError):
        Shares(store).resolve(store.shared_token)
    assert not (store.root / ".shares" / f"{store.shared_token}.json").exists()
    assert main(["runs", "owners", *home]) == 0
    assert "3 owners" in capsys.readouterr().out


def test_an_interrupted_owner_removal_is_finished_when_the_store_opens(store):
    (store.root / OLD_VISITOR).rename(store.root / f".deleting-{OLD_VISITOR}")
    RunStore(store.root)
    assert sorted(path.name for path in store.root.iterdir() if not path.name.startswith(".")) == [
        NEW_VISITOR,
        "gallery",
        "local",
    ]
    assert not (store.root / f".deleting-{OLD_VISITOR}").exists()
