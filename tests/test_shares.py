"""Share links: an unguessable token on disk opens one run read-only, survives a restart, ends on revoke or delete."""

from __future__ import annotations

import stat

import pytest
import torch
from test_run_store import trained_result
from tiny_models import tiny_model, tiny_tokenizer

from red_explorer.core.registry import MethodSpec
from red_explorer.models.loading import LoadedModel
from red_explorer.runs.shares import SHARES_FOLDER, ShareNotFoundError, Shares
from red_explorer.runs.store import RunNotFoundError, RunStore


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    tokenizer = tiny_tokenizer(["red blue green cat dog"] * 4, chat=False)
    return LoadedModel(tiny_model("llama"), tokenizer, "tiny-llama", "causal-lm", torch.device("cpu"), torch.float32)


@pytest.fixture
def kept(tmp_path, loaded):
    """A store with two runs of "alice" and one of "bob"."""
    store = RunStore(tmp_path / "runs")
    result = trained_result(loaded, MethodSpec("red"))
    runs = [store.save(owner, result, loaded, None, label=label) for owner, label in [("alice", "a1"), ("alice", "a2")]]
    return store, runs, store.save("bob", result, loaded, None, label="b1")


def test_a_link_opens_its_run_only_until_it_is_revoked(kept):
    store, (first, second), _ = kept
    share = Shares(store).create("alice", first.id)
    assert len(share.token) == 43 and share.token not in (first.id, "alice")  # 256 bits, url-safe
    opened = Shares(store).resolve(share.token)
    assert (opened.owner, opened.id, opened.label) == ("alice", first.id, "a1") and opened.path == first.path
    other = Shares(store).create("alice", second.id)
    listed = [(s.token, s.run_id) for s in Shares(store).list("alice")]
    assert listed == [(share.token, first.id), (other.token, second.id)]
    assert Shares(store).list("bob") == []
    assert Shares(store).revoke("alice", share.token).run_id == first.id
    with pytest.raises(ShareNotFoundError, match="revoked by its owner or never existed: ask the run's owner"):
        Shares(store).resolve(share.token)
    assert [s.token for s in Shares(store).list("alice")] == [other.token] and store.list("alice") == [first, second]


def test_tokens_are_random_and_unknown_or_malformed_ones_open_nothing(kept):
    store, (first, _), _ = kept
    tokens = {Shares(store).create("alice", first.id).token for _ in range(20)}
    assert len(tokens) == 20 and all(len(token) == 43 for token in tokens)
    for token in ["A" * 43, "../alice/" + first.id, "", first.id, "x" * 42]:
        with pytest.raises(ShareNotFoundError, match="never existed"):
            Shares(store).resolve(token)


def test_only_the_owner_revokes_and_only_an_existing_run_is_shared(kept):
    store, (first, _), bobs = kept
    share = Shares(store).create("alice", first.id)
    with pytest.raises(ShareNotFoundError, match="no active share link"):
        Shares(store).revoke("bob", share.token)
    assert Shares(store).resolve(share.token).id == first.id
    with pytest.raises(RunNotFoundError, match="no run"):
        Shares(store).create("alice", bobs.id)  # bob's run is not alice's to share
    assert [s.token for s in Shares(store).list("alice")] == [share.token]


def test_deleting_a_run_revokes_its_links_only(kept):
    store, (first, second), _ = kept
    doomed = [Shares(store).create("alice", first.id) for _ in range(2)]
    kept_link = Shares(store).create("alice", second.id)
    store.delete("alice", first.id)
    for share in doomed:
        with pytest.raises(ShareNotFoundError):
            Shares(store).resolve(share.token)
    assert [s.token for s in Shares(store).list("alice")] == [kept_link.token]
    assert Shares(store).resolve(kept_link.token).id == second.id


def test_links_survive_a_new_store_and_are_owner_only_files(kept):
    store, (first, _), _ = kept
    share = Shares(store).create("alice", first.id)
    path = store.root / SHARES_FOLDER / f"{share.token}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left behind
    restarted = RunStore(store.root)
    assert Shares(restarted).resolve(share.token).id == first.id
    assert restarted.list("alice")[0].id == first.id  # the shares folder is no owner's folder
