"""The page's progress overlay: the Train, sweep and ablation handlers report each step to the gr.Progress given."""

import time
from types import SimpleNamespace

import gradio as gr
import pytest
from app_helpers import new_session
from gradio.context import LocalContext

from red_explorer.app.ui.handlers import ablate, common, sweep, train
from red_explorer.app.ui.handlers.common import given_progress, no_progress

LOOP = dict(max_steps=2, batch_size=8, max_length=64, epochs=1, seed=0)


class Overlay:
    """Stands in for the queue of a running Gradio event: keeps what each gr.Progress call sends to the page."""

    def __init__(self):
        self.descriptions = []

    def set_progress(self, event_id, iterables):
        self.descriptions.extend(tracked.desc for tracked in iterables)


@pytest.fixture()
def overlay():
    """A gr.Progress inside a (stand-in) running event, and what reached that event's overlay."""
    queue = Overlay()
    blocks_token = LocalContext.blocks.set(SimpleNamespace(_queue=queue))
    event_token = LocalContext.event_id.set("event-1")
    yield gr.Progress(), queue.descriptions
    LocalContext.event_id.reset(event_token)
    LocalContext.blocks.reset(blocks_token)


def test_a_fresh_gradio_progress_is_falsy_yet_kept():
    progress = gr.Progress()
    assert len(progress) == 0 and not progress
    assert given_progress(progress) is progress
    assert given_progress(None) is no_progress


def test_training_sends_each_step_to_the_overlay(files, overlay, monkeypatch):
    progress, shown = overlay
    session = new_session(files)
    real_train = session.workbench.train

    def unhurried_train(spec, options, callback=None):
        """The real training, with each step reported 0.2 s late: the page polls during each step."""
        return real_train(spec, options, lambda event: (callback(event), time.sleep(0.2)))

    monkeypatch.setattr(common, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(session.workbench, "train", unhurried_train)
    try:
        list(train.train(session, ["RED"], "full", ["ffn"], progress=progress, eval_every=None, **LOOP))
    finally:
        session.close()
    assert "RED full (ffn): step 2/2" in shown
    assert set(shown) <= {"RED full (ffn): step set-up", "RED full (ffn): step 1/2", "RED full (ffn): step 2/2"}


def test_a_sweep_sends_each_point_and_step_to_the_overlay(files, overlay):
    progress, shown = overlay
    session = new_session(files)
    try:
        list(sweep.sweep(session, ["red"], "1e-2", **LOOP, forgetting=False, progress=progress))
    finally:
        session.close()
    assert shown[:3] == [
        "RED full (ffn) lr 1e-2 1/1",  # reported from the sweep's own thread
        "RED full (ffn) lr 1e-2 1/1, step 1/2",
        "RED full (ffn) lr 1e-2 1/1, step 2/2: validating …",
    ]


def test_an_ablation_sends_each_row_and_step_to_the_overlay(files, overlay):
    progress, shown = overlay
    session = new_session(files)
    try:
        list(ablate.ablate(session, ["red:full:ffn"], **LOOP, progress=progress))
    finally:
        session.close()
    assert shown == ["RED full (ffn)", "RED full (ffn), step 1/2", "RED full (ffn), step 2/2"]
