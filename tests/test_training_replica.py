"""The training replica: one copy per base, reused job after job, handed back as the base."""

import threading

import pytest
import torch
from tiny_models import logits, sample_inputs, tiny_model

from red_explorer.app.training_replica import TrainingReplicas
from red_explorer.core.registry import MethodSpec, apply_method


def train_a_step(model, spec):
    trained = apply_method(model, spec, "causal-lm")
    parameters = [parameter for parameter in trained.parameters() if parameter.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=0.5)
    input_ids = sample_inputs()
    trained(input_ids=input_ids, labels=input_ids).loss.backward()
    optimizer.step()
    return trained


@pytest.mark.parametrize("method", ["red", "lora", "full"])
def test_the_replica_is_reused_and_handed_back_as_the_base(method):
    base, replicas, lock = tiny_model("gpt2"), TrainingReplicas(), threading.RLock()
    base.requires_grad_(False)  # a loaded base is frozen
    expected = logits(base, sample_inputs())
    with replicas.lend("gpt2", base, lock) as first:
        trained = train_a_step(first, MethodSpec(method))
        assert not torch.equal(logits(trained, sample_inputs()), expected)
        spec = MethodSpec(method)
        if not spec.entry.saves_whole_model:
            spec.entry.detach(trained)
    with replicas.lend("gpt2", base, lock) as second:
        assert second is first  # no new copy for the next job
        assert torch.equal(logits(second, sample_inputs()), expected)
        assert not any(parameter.requires_grad for parameter in second.parameters())
    assert torch.equal(logits(base, sample_inputs()), expected)  # the shared base was never touched


def test_a_replica_left_with_its_method_attached_is_dropped_and_copied_afresh():
    base, replicas, lock = tiny_model("gpt2"), TrainingReplicas(), threading.RLock()
    with replicas.lend("gpt2", base, lock) as first:
        train_a_step(first, MethodSpec("red"))  # not detached: its structure is not the base's any more
    with replicas.lend("gpt2", base, lock) as second:
        assert second is not first and not any("red_" in name for name, _ in second.named_parameters())
    with pytest.raises(RuntimeError), replicas.lend("gpt2", base, lock) as third:
        raise RuntimeError("a job failed half-way")
    with replicas.lend("gpt2", base, lock) as fourth:
        assert fourth is not third


def test_the_replica_is_reset_only_while_no_other_session_has_an_edit_on_the_base():
    base, replicas, lock = tiny_model("gpt2"), TrainingReplicas(), threading.RLock()
    base.requires_grad_(False)
    with replicas.lend("gpt2", base, lock) as first:
        pass
    other_session = MethodSpec("red", variant="bias")
    finished = threading.Event()

    def one_job() -> None:
        with replicas.lend("gpt2", base, lock):
            pass
        finished.set()

    with lock:  # another session generates with its edit on the shared base
        attached = apply_method(base, other_session, "causal-lm")
        job = threading.Thread(target=one_job)
        job.start()
        assert not finished.wait(0.5)  # the reset waits for the base to be plain again
        other_session.entry.detach(attached)
    job.join()
    with replicas.lend("gpt2", base, lock) as again:
        assert again is first  # the reset read the plain base, so the replica was kept
