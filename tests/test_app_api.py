"""The public API of the launched app, scripted with gradio_client as a Space user would."""

import time
import zipfile

import pytest
from app_helpers import free_port, save_tiny_llama, tiny_rows, write_csv
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from red_explorer.app.ui import build_demo
from red_explorer.app.ui.interface import launch_options

ENDPOINTS = {"/load_model", "/load_data", "/train", "/stop", "/inspect", "/ablate", "/sweep", "/compare", "/export"}
EXPLORE = {"/explore_generate", "/explore_dose", "/explore_drift", "/explore_layers", "/explore_combine"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    bad = folder / "bad.csv"
    bad.write_text("colour,size\nred,3\nblue,4\ngreen,5\nred,6\n")
    return save_tiny_llama(folder / "model"), write_csv(folder / "words.csv", tiny_rows(40)), bad


@pytest.fixture(scope="module")
def url():
    demo = build_demo(preload=False)
    demo.queue(default_concurrency_limit=4).launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options()
    )
    yield demo.local_url
    demo.close()


def client(url, tmp_path) -> Client:
    return Client(url, analytics_enabled=False, verbose=False, download_files=str(tmp_path))


@pytest.fixture(scope="module")
def ready(url, files, tmp_path_factory):
    """A client whose session has the tiny model and the data loaded."""
    api = client(url, tmp_path_factory.mktemp("downloads"))
    api.info = api.predict(str(files[0]), "causal-lm", "auto", "auto", api_name="/load_model")
    api.data = api.predict(handle_file(str(files[1])), None, 0.1, 0, 64, api_name="/load_data")
    return api


def train(api, methods=("RED",), steps=3):
    settings = ("full", ["ffn"], 8, 4, 2, 1e-2, 3e-4, 1e-2)
    loop = (1, steps, 8, 64, 0, 2)
    return api.predict(list(methods), *settings, *loop, api_name="/train")


def test_every_main_action_is_a_named_endpoint(ready):
    named = set(ready.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert ENDPOINTS <= named and {"/export_merged", "/import_edits", "/tare_routing", "/load_sample"} <= named
    assert EXPLORE | {"/explore_control_vector", "/run_demo"} <= named
    drift = ready.view_api(print_info=False, return_format="dict")["named_endpoints"]["/explore_drift"]
    assert len(drift["returns"]) == 2  # the strip and the text it read (generated when the box was empty)


def test_load_model_and_data_report_numbers(ready):
    info, diagram, plot, status = ready.info
    assert "| layers | 2 |" in info and "<svg" in diagram and "ready" in status
    assert plot["type"] == "plotly" and "RED (FFN)" in plot["plot"]
    summary, preview, lengths = ready.data
    assert "36 train, 4 validation" in summary
    assert preview["headers"] == ["prompt", "response"] and len(preview["data"]) == 8
    assert lengths["type"] == "plotly"


def test_train_inspect_compare_export_through_the_api(ready, tmp_path):
    status, loss, summary = train(ready)
    assert "<b>Done.</b>" in status and summary["data"][0][0] == "RED full (ffn)"
    row = dict(zip(summary["headers"], summary["data"][0], strict=True))
    assert row["trainable params"] == "128" and row["stopped"] == "completed"
    assert '"RED full (ffn) · train"' in loss["plot"]
    inspected = ready.predict("RED full (ffn)", "(none)", api_name="/inspect")
    assert "2 edited sites, 128 learned values" in inspected[0]
    shown, cards, table = ready.predict(
        "red cat dog", None, ["RED full (ffn)"], 8, False, 0.7, 1.1, 0, api_name="/compare"
    )
    assert [line[0] for line in table["data"]] == ["base", "RED full (ffn)"] and cards.count("gen-card") == 2
    path, snippet = ready.predict("RED full (ffn)", api_name="/export")
    assert {"red_config.json", "edits.safetensors"} <= set(zipfile.ZipFile(path).namelist())
    assert "load_method" in snippet


def test_the_per_layer_measure_sends_its_progress_while_it_runs(ready, monkeypatch):
    from red_explorer.explore import layers

    train(ready)  # a RED run to measure
    evaluate = layers.evaluate  # the app runs in this process: each evaluation takes a while, to be seen
    monkeypatch.setattr(layers, "evaluate", lambda *args: (time.sleep(0.4), evaluate(*args))[1])
    job, seen = ready.submit("RED full (ffn)", 64, api_name="/explore_layers"), []
    while not job.done():
        progress = job.status().progress_data
        seen += [(progress[-1].progress, progress[-1].desc)] if progress else []
        time.sleep(0.05)
    assert job.result()["type"] == "plotly"
    heard = {fraction: desc.split(" · about")[0] for fraction, desc in seen}  # two layers: 6 evaluations
    assert heard.get(0.5) == "layer 0 (1 of 2) · keep only" and heard.get(5 / 6) == "layer 1 (2 of 2) · keep only"


def test_ablate_two_rows(ready):
    status, table, chart = ready.predict(["RED full (ffn)", "RED bias (ffn)"], 2, 8, 64, 1, 0, api_name="/ablate")
    assert "<b>Done:</b> 2/2 rows" in status
    assert [line[0] for line in table["data"]] == ["RED full (ffn)", "RED bias (ffn)"]
    assert chart["type"] == "plotly"


def test_a_bad_sweep_rate_is_a_message_before_any_run(ready):
    with pytest.raises(AppError, match="x.* is not a positive number. Type .*auto"):
        ready.predict(["red", "lora"], "1e-3, x", 2, 8, 64, 1, 0, True, api_name="/sweep")


def test_a_bad_file_is_a_message_and_the_session_keeps_working(ready, files):
    with pytest.raises(AppError, match="bad.csv was not loaded.*Still loaded: words.csv"):
        ready.predict(handle_file(str(files[2])), None, 0.1, 0, 64, api_name="/load_data")
    summary, _, _ = ready.predict(handle_file(str(files[1])), None, 0.1, 0, 64, api_name="/load_data")
    assert "36 train" in summary


def test_a_bad_model_path_is_a_message_and_the_model_stays(ready, files):
    with pytest.raises(AppError, match="was not loaded.*still uses"):
        ready.predict("/no/such/model", "causal-lm", "auto", "auto", api_name="/load_model")
    info, _, _, status = ready.predict(str(files[0]), "causal-lm", "auto", "auto", api_name="/load_model")
    assert "| layers | 2 |" in info and "ready" in status


def test_stop_with_nothing_running_says_so(ready):
    assert "Nothing is running" in ready.predict(api_name="/stop")


def test_sessions_do_not_see_each_others_runs(ready, url, files, tmp_path):
    train(ready, steps=1)
    stranger = client(url, tmp_path)
    stranger.predict(str(files[0]), "causal-lm", "auto", "auto", api_name="/load_model")
    with pytest.raises(AppError, match="no run called"):
        stranger.predict("RED full (ffn)", api_name="/export")
    with pytest.raises(AppError, match="no run on this model yet"):
        stranger.predict(None, api_name="/export")


def test_stop_ends_a_running_training_job(ready):
    settings = ("full", ["ffn"], 8, 4, 2, 1e-2, 3e-4, 1e-2)
    job = ready.submit(["RED"], *settings, 1000, 5000, 4, 64, 0, 0, api_name="/train")
    for _ in range(100):  # wait for the first steps
        if any("step" in str(update) for update in job.outputs()):
            break
        time.sleep(0.2)
    assert "Stopping" in ready.predict(api_name="/stop")
    status, _, summary = job.result(timeout=120)
    row = dict(zip(summary["headers"], summary["data"][0], strict=True))
    assert "<b>Stopped.</b>" in status and row["stopped"] == "stopped by user"


def test_concurrent_api_users_each_keep_and_see_only_their_own_runs(url, files, tmp_path):
    """A load test: USERS clients at once load, train, rename and export; nothing is lost or seen across them."""
    from concurrent.futures import ThreadPoolExecutor

    users = 4

    def one_user(index: int) -> tuple[Client, str]:
        api = client(url, tmp_path / f"user{index}")
        api.predict(str(files[0]), "causal-lm", "auto", "auto", api_name="/load_model")
        api.predict(handle_file(str(files[1])), None, 0.1, 0, 64, api_name="/load_data")
        train(api, steps=1)
        label = f"run of user {index}"
        api.predict("RED full (ffn)", label, api_name="/rename_run")
        return api, label

    with ThreadPoolExecutor(users) as pool:
        done = list(pool.map(one_user, range(users)))
    for api, label in done:
        path, _ = api.predict(label, api_name="/export")  # its own run is kept
        assert "red_config.json" in zipfile.ZipFile(path).namelist()
        for _, other in done:
            if other != label:
                with pytest.raises(AppError, match="no run called"):
                    api.predict(other, api_name="/export")
