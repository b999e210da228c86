"""Counting a long computation's passes (``on_progress(done, total, what)``) and showing them on the page's bar."""

import torch

from red_explorer.app.ui.handlers.counting import ShownProgress, time_left
from red_explorer.engine.progress import PassCounter, TokenCounter


class Heard:
    """An ``on_progress`` that keeps every (done, total, what)."""

    def __init__(self):
        self.calls = []

    def __call__(self, done, total, what):
        self.calls.append((done, total, what))


def test_a_counter_tells_each_pass_as_it_starts_and_the_end():
    heard = Heard()
    counter = PassCounter(2, heard)
    with counter.step("first"):
        pass
    with counter.step("second"):
        pass
    counter.finish()
    assert heard.calls == [(0, 2, "first"), (1, 2, "second"), (2, 2, "done")]


def test_a_token_counter_counts_each_step_after_the_prompt_and_a_call_ended_early_as_whole():
    heard = Heard()
    counter = PassCounter(8, heard)
    first = TokenCounter(counter, "base + 1 run", 4)
    first.put(torch.tensor([[5, 6, 7], [5, 6, 7]]))  # the prompt, (B, T)
    first.put(torch.tensor([1, 2]))  # one step's new tokens, (B,)
    first.put(torch.tensor([2, 2]))
    first.end()  # every row ended after 2 of 4 tokens
    assert heard.calls == [
        (1, 8, "generating for base + 1 run: token 1 of 4"),
        (2, 8, "generating for base + 1 run: token 2 of 4"),
    ]
    second = TokenCounter(counter, "TARE", 4)
    second.put(torch.tensor([[5]]))
    second.put(torch.tensor([3]))
    assert heard.calls[-1] == (5, 8, "generating for TARE: token 1 of 4")  # the first call counts its 4 steps


def test_the_bar_shows_the_fraction_what_runs_and_the_time_left_at_the_recent_pace():
    shown, times = [], iter([100.0, 110.0, 130.0, 400.0])
    bar = ShownProgress(lambda fraction, desc=None: shown.append((fraction, desc)), clock=lambda: next(times))
    bar(0, 4, "the base")
    bar(1, 4, "α = 0 (1 of 3)")  # 10 s for one pass: 30 s for the 3 left
    bar(2, 4, "α = 1 (2 of 3)")  # the last pass took 20 s: 40 s for the 2 left
    bar(4, 4, "done")
    assert shown == [
        (0.0, "the base"),
        (0.25, "α = 0 (1 of 3) · about 30 s left"),
        (0.5, "α = 1 (2 of 3) · about 40 s left"),
        (1.0, "done"),
    ]
    assert time_left(0.2) == "about 1 s left" and time_left(200) == "about 3 min left"
    ShownProgress(None)(1, 2, "no bar")  # outside the app: nothing to show, no error


def test_the_time_left_follows_a_job_that_slows_down_as_it_goes():
    passes = [10.0] * 6 + [30.0] * 6  # a CPU that gets busy halfway: passes 3 times slower
    times = iter([sum(passes[:done]) for done in range(13)])
    shown = []
    bar = ShownProgress(lambda fraction, desc=None: shown.append(desc), clock=lambda: next(times))
    for done in range(13):
        bar(done, 24, "pass")
    # after 12 passes (240 s) the mean says 20 s a pass (4 min left); the last 4 took 30 s each: 12 × 30 s = 6 min
    assert shown[12] == "pass · about 6 min left" and shown[6] == "pass · about 3 min left"  # 18 × 10 s
    assert shown[9] == "pass · about 8 min left"  # 3 passes at 30 s: 15 left at 30 s each, 7.5 min


def test_a_gradio_progress_is_kept_though_it_is_falsy_before_it_tracks_anything():
    import gradio as gr

    progress = gr.Progress()
    assert not progress  # its length: nothing tracked yet
    assert ShownProgress(progress).progress is progress
