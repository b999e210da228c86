"""What the app lets a browser or a script do: keep its runs across restarts, never reach the command line's runs,
see labels as typed, get plain errors, and leave nothing behind in memory once idle."""

import json
import stat

import httpx
import pytest
from app_helpers import QUICK, free_port
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from red_explorer.app.browser_secret import SECRET_FILE, browser_secret
from red_explorer.app.model_registry import ModelRegistry
from red_explorer.app.serving import serving
from red_explorer.app.ui import build_demo
from red_explorer.app.ui.events import ui_event
from red_explorer.app.ui.handlers import compare, explore, export, inspect, runs
from red_explorer.app.ui.handlers.markup import plain
from red_explorer.app.ui.interface import MAX_UPLOAD_BYTES, _start, launch_options
from red_explorer.app.ui.session import Session, close_idle
from red_explorer.app.workbench import Workbench
from red_explorer.core.registry import MethodSpec

EVIL = "<img src=x onerror=alert(1)> ![x](http://e/x.png) **b**"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RED_EXPLORER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RED_EXPLORER_SECRET", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    return tmp_path / "home"


def secret_of(demo) -> str:
    """The one secret every value the browser keeps (the owner key, the Train tab's settings) is encrypted with."""
    (secret,) = {block.secret for block in demo.blocks.values() if type(block).__name__ == "BrowserState"}
    return secret


# ------------------------------------------------------------------ a restart keeps the browser's key readable


def test_two_app_builds_on_one_home_share_the_browser_secret_kept_owner_only(home, monkeypatch):
    first, second = secret_of(build_demo(preload=False)), secret_of(build_demo(preload=False))
    assert first == second and len(first) >= 32  # a restarted app decrypts what the browser kept
    path = home / SECRET_FILE
    assert path.read_text() == first and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert browser_secret(home.parent / "other home") != first  # one secret per home
    monkeypatch.setenv("RED_EXPLORER_SECRET", "set-on-the-space")
    assert secret_of(build_demo(preload=False)) == "set-on-the-space"


# ------------------------------------------------------------------ the command line's runs stay the command line's


def cli_run(files):
    """A run kept by the command line (owner "local")."""
    cli = Workbench(ModelRegistry(), owner="local")
    cli.load_model(str(files[0]))
    cli.load_data(files[1])
    return cli.train(MethodSpec("red"), QUICK)


@pytest.mark.parametrize("key", ["local", "LOCAL", "../../etc", "a" * 31, "A" * 32, "g" * 32, "", None])
def test_a_browser_key_of_another_form_than_the_generated_one_gets_a_fresh_key(key, home):
    session = Session(Workbench(ModelRegistry()))
    fresh = _start(session, key)[2]
    assert fresh != key and len(fresh) == 32 and int(fresh, 16) >= 0 and session.workbench.owner == fresh
    kept = "0123456789abcdef" * 2
    assert _start(Session(Workbench(ModelRegistry())), kept)[2] == kept  # the form the app makes is kept


def test_the_app_listens_on_loopback_unless_told_and_shares_cli_runs_only_there(monkeypatch):
    for name in ("GRADIO_SERVER_NAME", "PORT", "GRADIO_SERVER_PORT", "SPACE_ID", "RED_EXPLORER_SHOW_CLI_RUNS"):
        monkeypatch.delenv(name, raising=False)
    assert serving() == serving([]) and (serving().host, serving().port, serving().show_cli_runs) == (
        "127.0.0.1",
        7860,
        False,
    )
    assert serving(["--show-cli-runs", "--port", "8000"]).show_cli_runs and serving(["--port", "8000"]).port == 8000
    assert serving([], {"GRADIO_SERVER_NAME": "0.0.0.0", "PORT": "9000"}).host == "0.0.0.0"
    with pytest.raises(SystemExit, match="works only when the app listens on this machine alone.*runs export"):
        serving(["--show-cli-runs", "--host", "0.0.0.0"])
    with pytest.raises(SystemExit, match="not on 192.168.1.5"):
        serving([], {"GRADIO_SERVER_NAME": "192.168.1.5", "RED_EXPLORER_SHOW_CLI_RUNS": "1"})
    monkeypatch.setenv("SPACE_ID", "someone/red-explorer")
    assert serving().host == "0.0.0.0"  # what a Space needs
    with pytest.raises(SystemExit):
        serving(["--show-cli-runs"])


def shown_in_page(block) -> bool:
    """Whether ``block`` and every layout around it are visible."""
    while block is not None:
        if getattr(block, "visible", True) is False:
            return False
        block = block.parent
    return True


def test_cli_runs_are_offered_only_to_an_app_started_to_share_them(files, home):
    kept = cli_run(files)
    for show, offered in ((False, []), (True, [kept.label])):
        session = Session(show_cli_runs=show)
        _start(session, None)
        session.workbench.load_model(str(files[0]))
        assert [run.label for run in session.workbench.local_runs()] == offered
        demo = build_demo(preload=False, show_cli_runs=show)
        (local,) = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "local-runs"]
        assert shown_in_page(local) is show  # the Export tab shows the command line's runs only when shared


# ------------------------------------------------------------------ labels are shown as typed


def shown_as_text(text: str) -> bool:
    """No tag, image, link or bold made from the label; the label itself is there, written safely."""
    return "<img" not in text and "![" not in text and "**b**" not in text and plain(EVIL) in text


def test_a_label_with_html_and_markdown_is_shown_as_typed_by_every_handler(files, home):
    session = Session(Workbench(ModelRegistry()))
    session.workbench.load_model(str(files[0]))
    session.workbench.load_data(files[1])
    run = session.workbench.train(MethodSpec("red"), QUICK)
    overview, _ = runs.rename(session, run.label, EVIL)
    assert shown_as_text(overview) and shown_as_text(runs.overview(session))
    summary = inspect.inspect(session, EVIL)[0]
    assert shown_as_text(summary)
    shown, cards, _ = compare.compare(session, "red cat", None, [EVIL], 4)
    assert shown_as_text(shown) and shown_as_text(cards)
    status, *_ = explore.combine(session, "negate", EVIL, None, name=EVIL + " 2")
    assert shown_as_text(status)
    with pytest.raises(gr_error()):
        ui_event(export.export_edits)(session, EVIL + "!")  # the refusal names the label
    assert shown_as_text(export.restore_after_failure(session, None)[0])


def gr_error():
    import gradio as gr

    return gr.Error


# ------------------------------------------------------------------ the launched app, scripted


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    demo = build_demo(preload=False)
    demo.queue(default_concurrency_limit=4).launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options()
    )
    yield demo
    demo.close()


def fn_index(demo, name: str) -> int:
    """The index of an event as the page calls it: ``name`` is an API name or "load" (the page-load event)."""
    for index, dependency in demo.fns.items():
        if dependency.api_name == name or any(target[1] == name for target in dependency.targets):
            return index
    raise LookupError(name)


def call_as_the_page(demo, name: str, data: list, session_hash: str) -> dict:
    """Send one event the way the page does (by fn_index, any session hash): the final message."""
    url = demo.local_url + "gradio_api/queue"
    body = {"data": data, "fn_index": fn_index(demo, name), "session_hash": session_hash, "trigger_id": None}
    httpx.post(f"{url}/join", json=body).raise_for_status()
    with httpx.stream("GET", f"{url}/data", params={"session_hash": session_hash}, timeout=120) as stream:
        for line in stream.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                return message


def test_a_client_that_sends_the_owner_local_gets_its_own_key_not_the_clis_runs(app, files):
    kept = cli_run(files)
    cli = Workbench(ModelRegistry(), owner="local")
    started = call_as_the_page(app, "load", [None, "local"], "intruder")
    key = started["output"]["data"][2]
    assert key != "local" and len(key) == 32
    call_as_the_page(app, "load_model", [None, str(files[0]), "causal-lm", "auto", "auto"], "intruder")
    refused = call_as_the_page(app, "delete_run", [None, kept.label], "intruder")
    assert refused["success"] is False and "no run called" in refused["output"]["error"]
    assert kept.id in [run.id for run in cli.all_runs()]  # the command line's run is still there


def test_errors_reach_api_clients_as_plain_text(app, files, tmp_path):
    api = Client(app.local_url, analytics_enabled=False, verbose=False, download_files=str(tmp_path))
    api.predict(str(files[0]), "causal-lm", "auto", "auto", api_name="/load_model")
    with pytest.raises(AppError) as refused:
        api.predict("A<b>", api_name="/export")
    assert "no run called 'A<b>'" in str(refused.value) and "&#x27;" not in str(refused.value)


def test_an_upload_over_the_limit_is_refused_before_it_is_kept(app, tmp_path):
    assert app.max_file_size == MAX_UPLOAD_BYTES == 100_000_000 and app.delete_cache == (3600, 3600)
    big = tmp_path / "big.csv"
    with open(big, "wb") as handle:
        handle.truncate(MAX_UPLOAD_BYTES + 1_000_000)
    api = Client(app.local_url, analytics_enabled=False, verbose=False, download_files=str(tmp_path))
    with pytest.raises(Exception, match="(?i)too large|exceeds|maximum"):
        api.predict(handle_file(str(big)), None, 0.1, 0, 64, api_name="/load_data")


def test_sessions_opened_through_the_api_are_freed_once_idle(app, files, tmp_path):
    import time

    from red_explorer.app.ui import session as sessions

    before = set(sessions._OPEN)
    clients = [Client(app.local_url, analytics_enabled=False, verbose=False) for _ in range(3)]
    for api in clients:
        api.predict(str(files[0]), "causal-lm", "auto", "auto", api_name="/load_model")
        api.predict(handle_file(str(files[1])), None, 0.1, 0, 64, api_name="/load_data")
    opened = set(sessions._OPEN) - before
    folders = [session.workbench.folder() for session in opened]
    assert len(opened) == 3 and all((folder / "data" / files[1].name).is_file() for folder in folders)
    time.sleep(1.2)
    for session in before:  # the other tests' sessions are in use
        session.last_used = time.monotonic()
    assert close_idle(1.0) == 3
    assert not set(sessions._OPEN) & opened and not any(folder.exists() for folder in folders)
    info = clients[0].predict(str(files[0]), "causal-lm", "auto", "auto", api_name="/load_model")
    assert "| layers | 2 |" in info[0] and len(set(sessions._OPEN) & opened) == 1  # a client coming back works


def test_a_session_keeps_its_data_when_the_upload_cache_is_cleaned(files, home, tmp_path):
    upload = tmp_path / "upload" / files[1].name
    upload.parent.mkdir()
    upload.write_bytes(files[1].read_bytes())
    bench = Workbench(ModelRegistry())
    bench.load_model(str(files[0]))
    bench.load_data(upload)
    upload.unlink()  # Gradio deletes uploads older than an hour
    assert bench.prepared(32).tokenized["train"].num_rows > 0 and bench.data.name == files[1].name
    bench.close()
