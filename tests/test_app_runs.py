"""The app's runs are kept edits: per owner, across reloads and restarts, never capped, applied on demand."""

import threading

import pytest
import torch
from app_helpers import QUICK
from tiny_models import logits, sample_inputs

from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.options import TrainOptions
from red_explorer.app.ui.handlers.common import Visible
from red_explorer.app.ui.interface import _start
from red_explorer.app.ui.session import Session
from red_explorer.app.workbench import Workbench
from red_explorer.choice.sweep import SweepConfig
from red_explorer.core.registry import MethodSpec
from red_explorer.data.render import encode_prompt
from red_explorer.engine.generation import DecodingSettings
from red_explorer.engine.training import TrainConfig
from red_explorer.runs.leftovers import INCOMING
from red_explorer.runs.size import RECORD_BYTES, estimated_run_bytes, human_bytes
from red_explorer.runs.store import QuotaError, RunStore

INPUTS = sample_inputs(batch=2, length=8)
SETTINGS = DecodingSettings(max_new_tokens=8)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only contend


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RED_EXPLORER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SPACE_ID", raising=False)
    return tmp_path / "home"


def open_bench(files, registry=None, owner=None, store=None) -> Workbench:
    bench = Workbench(registry or ModelRegistry(), store=store, owner=owner)
    bench.load_model(str(files[0]))
    bench.load_data(files[1])
    return bench


def applied_logits(bench: Workbench, label: str) -> torch.Tensor:
    with bench.attached(label) as model:
        return logits(model, INPUTS)


def test_25_runs_survive_a_reload_and_a_restart_and_stay_private(files, home):
    session = Session(open_bench(files))
    _, _, owner = _start(session, None)  # first visit: a new random key for the browser to keep
    variants = ("full", "scale", "bias")
    for index in range(25):
        session.workbench.train(MethodSpec("red", variant=variants[index % 3]), QUICK)
    labels = session.workbench.run_labels()
    assert len(labels) == 25 and len(set(labels)) == 25  # none dropped, none replaced, all told apart
    reloaded = Session(Workbench(session.workbench.registry))  # a page reload: a new session, same browser key
    assert _start(reloaded, owner)[2] == owner
    reloaded.workbench.load_model(str(files[0]))
    assert reloaded.workbench.run_labels() == labels
    restarted = Workbench(ModelRegistry(), owner=owner)  # a new process: new registry, new store, same home
    restarted.load_model(str(files[0]))
    assert restarted.run_labels() == labels and restarted.store is not session.workbench.store
    torch.testing.assert_close(applied_logits(restarted, labels[0]), applied_logits(session.workbench, labels[0]))
    stranger = Session(Workbench(ModelRegistry()))
    _start(stranger, None)
    stranger.workbench.load_model(str(files[0]))
    assert stranger.workbench.owner != owner and stranger.workbench.run_labels() == []


def test_a_bad_owner_key_gets_a_fresh_one(files, home):
    session = Session(Workbench(ModelRegistry()))
    key = _start(session, "../../etc")[2]
    assert key != "../../etc" and len(key) == 32 and session.workbench.owner == key


def test_a_run_killed_mid_write_is_not_listed(files, home):
    bench = open_bench(files)
    run = bench.train(MethodSpec("red"), QUICK)
    owner_folder = run.record.path.parent
    half = owner_folder / f"{INCOMING}20260101-000000-abcdef"  # what a killed save leaves behind
    half.mkdir()
    (half / "edits.safetensors").write_bytes(b"partial")
    no_record = owner_folder / "20260101-000001-abcdef"  # complete name, but run.json never written
    no_record.mkdir()
    (no_record / "red_config.json").write_text("{}")
    assert (
        bench.run_labels() == [run.label] and Workbench(ModelRegistry(), owner=bench.owner).all_runs()[0].id == run.id
    )


def test_the_quota_refuses_with_a_message_and_delete_frees_room(files, home):
    bench = open_bench(files)
    first = bench.train(MethodSpec("red"), QUICK)
    bench.store = RunStore(bench.store.root, quota_bytes=bench.store.usage_bytes(bench.owner) + 100)
    with pytest.raises(QuotaError, match="nothing was deleted"):
        bench.train(MethodSpec("red", variant="bias"), QUICK)
    assert bench.run_labels() == [first.label] and "1 run" in bench.usage()
    bench.delete_run(first.label)
    assert bench.run_labels() == []
    renamed = bench.rename_run(bench.train(MethodSpec("red", variant="bias"), QUICK).label, "my bias run")
    assert bench.run_labels() == ["my bias run"] and renamed.label == "my bias run"


def test_the_clis_runs_are_offered_when_shared_and_imported_as_a_copy(files, home, monkeypatch):
    cli = open_bench(files, owner="local")
    kept = cli.train(MethodSpec("red"), QUICK)
    bench = open_bench(files, registry=cli.registry)
    assert bench.local_runs() == []  # offered only when the app was started to share them (on loopback)
    bench.show_cli_runs = True
    assert [run.label for run in bench.local_runs()] == [kept.label]
    imported = bench.import_local(kept.label)
    torch.testing.assert_close(applied_logits(bench, imported.label), applied_logits(cli, kept.label))
    assert cli.run_labels() == [kept.label]  # the CLI's copy is untouched
    monkeypatch.setenv("SPACE_ID", "someone/red-explorer")
    assert bench.local_runs() == []  # on a Space, nobody's local runs are offered


def test_two_sessions_train_and_generate_at_once_without_seeing_each_others_edits(files, home):
    registry = ModelRegistry()
    first, second = open_bench(files, registry), open_bench(files, registry)
    base = logits(first.loaded().model, INPUTS)
    mine = second.train(MethodSpec("red", variant="bias"), QUICK)
    expected = applied_logits(second, mine.label)
    errors, seen = [], []

    def train_first() -> None:
        try:
            for variant in ("full", "scale", "full"):
                first.train(MethodSpec("red", variant=variant), TrainOptions(max_steps=3, max_length=64))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    worker = threading.Thread(target=train_first)
    worker.start()
    while worker.is_alive() or not seen:
        seen.append(torch.equal(applied_logits(second, mine.label), expected))
        second.compare("red cat", labels=[mine.label], settings=DecodingSettings(max_new_tokens=2))
    worker.join()
    assert not errors and all(seen) and len(seen) > 1
    assert second.run_labels() == [mine.label] and len(first.run_labels()) == 3
    assert torch.equal(logits(first.loaded().model, INPUTS), base)  # the shared base is plain again


def test_batched_compare_equals_one_generation_per_run_token_for_token(files, home):
    bench = open_bench(files)
    for spec in (MethodSpec("red"), MethodSpec("red", variant="bias"), MethodSpec("lora"), MethodSpec("tare")):
        bench.train(spec, TrainOptions(max_steps=3, max_length=64, eval_every=None, learning_rate=0.5))
    labels = bench.run_labels()
    comparison = bench.compare("red cat", labels=labels, settings=SETTINGS)
    assert [generation.method for generation in comparison.generations] == ["base", *labels]
    assert comparison.batched.batched[:3] == ["base", labels[0], labels[1]] and labels[2] in comparison.batched.batched
    loaded = bench.loaded()
    ids = torch.tensor([encode_prompt(loaded.tokenizer, comparison.prompt)])
    kwargs = SETTINGS.generate_kwargs() | {"pad_token_id": loaded.tokenizer.eos_token_id}
    separate = [loaded.model.generate(ids, **kwargs)[0, ids.shape[1] :].tolist()]
    for label in labels:
        with bench.attached(label) as model:
            separate.append(model.generate(ids, **kwargs)[0, ids.shape[1] :].tolist())
    for batched_ids, alone in zip(comparison.batched.token_ids, separate, strict=True):
        assert batched_ids == alone[: len(batched_ids)] and len(batched_ids) >= 1
    assert len({tuple(tokens) for tokens in comparison.batched.token_ids}) > 1  # the runs really differ


def test_each_run_keeps_one_colour_in_the_loss_plot_and_the_compare_cards(files, home):
    from red_explorer.app.colours import METHOD_COLOURS
    from red_explorer.app.ui.handlers import common, compare, explore, train

    session = Session(open_bench(files))
    settings = ("full", ["ffn"], 8, 4, 2, 1e-2, 3e-4, 1e-2)
    *_, (_, figure, _) = list(train.train(session, ["RED", "LoRA"], *settings, 1, 2, 8, 64, 0, None))
    runs = list(session.workbench.runs.values())
    colours = {trace.name.split(" · ")[0]: trace.line.color for trace in figure.data}
    assert colours == {run.label: METHOD_COLOURS[run.spec.method] for run in runs}  # each its method's colour
    assert colours == common.colours(session.workbench)
    _, cards, table = compare.compare(session, "red cat", None, [run.label for run in runs], 8)
    assert all(f"border-top-color: {colours[run.label]}" in cards for run in runs)
    assert table.attrs[common.ROW_COLOURS][1:] == [colours[run.label] for run in runs]
    red = runs[0].label
    _, run_card, _ = explore.generate(session, red, 1.0, "red cat", 8)
    assert f"border-top-color: {colours[red]}" in run_card
    assert explore.dose(session, red, 64).data[0].line.color == colours[red]  # Explore's plot: the same colour


def test_compare_reports_a_batched_calls_time_once_and_speed_only_per_own_call(files, home):
    from red_explorer.app.ui.handlers import compare

    session = Session(open_bench(files))
    for spec in (MethodSpec("red"), MethodSpec("tare")):  # RED shares the base's call; TARE has one of its own
        session.workbench.train(spec, TrainOptions(max_steps=1, max_length=64, eval_every=None))
    red, tare = session.workbench.run_labels()
    shown, cards, table = compare.compare(session, "red cat", None, [red, tare], 8)
    rows = table.set_index("method")
    assert rows.loc["base", "seconds"] == rows.loc[red, "tokens/s"] == compare.SHARED  # no share of a batched call
    assert rows.loc[tare, "seconds"] > 0 and rows.loc[tare, "tokens/s"] > 0
    assert cards.count("batched call") == 2 and cards.count("tok/s") == 1
    batched = next(line for line in shown.splitlines() if line.startswith("- base, "))
    assert f"- base, {red}: one batched call of 2 rows, " in batched and "tok/s" in batched
    assert shown.count(f"- {tare}: a call of its own") == 1


def test_your_runs_lists_sizes_renames_deletes_and_copies_local_runs(files, home):
    from red_explorer.app.ui.events import ui_event
    from red_explorer.app.ui.handlers import runs

    cli = open_bench(files, owner="local")
    cli.train(MethodSpec("lora"), QUICK)
    session = Session(open_bench(files, registry=cli.registry))
    session.workbench.show_cli_runs = True
    session.workbench.train(MethodSpec("red"), QUICK)
    assert runs.local_choices(session).choices == ["LoRA r=8"]
    shown, choices = runs.import_local(session, "LoRA r=8")
    assert choices.choices == ["RED full (ffn)", "LoRA r=8"] and "2 runs" in shown and "of 500.0 MB" in shown
    shown, choices = runs.rename(session, "RED full (ffn)", "my first RED")
    assert choices.value == "my first RED" and "**my first RED** (RED, " in shown
    store, owner = session.workbench.store, session.workbench.owner
    before = store.usage_bytes(owner)
    asked = runs.ask_delete(session, "my first RED")
    assert "**my first RED** (RED, " in runs.overview(session)  # asking deletes nothing
    shown, choices = runs.delete(session, "my first RED")
    freed = human_bytes(before - store.usage_bytes(owner))  # the run's whole folder, more than its edits
    assert asked == (Visible(True), f"Yes, delete 'my first RED' ({freed}) for good")
    done, listed = shown.split("\n\n", 1)
    assert done == f"✓ Deleted run **my first RED** ({freed} freed)."
    assert choices.choices == ["LoRA r=8"] and "my first RED" not in listed
    _, update = ui_event(runs.rename)(session, "LoRA r=8", "adapter")
    assert update["value"] == "adapter" and update["choices"] == ["adapter"]


def test_the_quota_is_checked_before_training_a_run_an_ablation_or_a_sweep(files, home):
    bench = open_bench(files)
    first = bench.train(MethodSpec("red"), QUICK)
    loaded = bench.loaded()
    estimate = estimated_run_bytes(loaded.model, MethodSpec("red"), loaded.task)
    assert estimate == first.record.trainable_parameters * 4 + RECORD_BYTES  # float32 scale and bias vectors
    full = estimated_run_bytes(loaded.model, MethodSpec("full"), loaded.task)
    assert full == sum(parameter.numel() * 4 for parameter in loaded.model.parameters()) + RECORD_BYTES
    one_more = bench.store.usage_bytes(bench.owner) + int(1.5 * estimate)  # room for one RED run, not two
    bench.store = RunStore(bench.store.root, quota_bytes=one_more)
    events = []
    with pytest.raises(QuotaError, match=r"training this run would keep about .* and train again"):
        bench.train(MethodSpec("full"), QUICK, callback=events.append)
    with pytest.raises(QuotaError, match="training this ablation's 2 runs would keep about"):
        bench.ablate(
            [MethodSpec("red"), MethodSpec("red", variant="bias")],
            QUICK,
            on_progress=lambda *event: events.append(event),
        )
    sweep = SweepConfig(learning_rates=[1e-3, 1e-2], train=TrainConfig(max_steps=1, batch_size=8))
    with pytest.raises(QuotaError, match="training this sweep's 2 points would keep about"):
        bench.sweep([MethodSpec("red")], sweep, max_length=64, on_progress=lambda *event: events.append(event))
    assert events == [] and bench.run_labels() == [first.label]  # nothing trained, nothing kept
