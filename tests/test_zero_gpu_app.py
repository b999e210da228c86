"""The launched app on ZeroGPU (``fake_spaces``' forked worker), scripted with gradio_client as a Space user would."""

import time

from app_helpers import free_port
from gradio_client import Client, handle_file

from red_explorer.app.ui import build_demo
from red_explorer.app.ui.interface import launch_options

SETTINGS = ("full", ["ffn"], 8, 4, 2, 1e-2, 3e-4, 1e-2)  # /train's method settings


def test_the_app_trains_stops_and_compares_in_the_gpu_worker(forking_spaces, files, tmp_path):
    demo = build_demo(preload=False)
    demo.queue(default_concurrency_limit=4).launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options()
    )
    try:
        api = Client(demo.local_url, analytics_enabled=False, verbose=False, download_files=str(tmp_path))
        api.predict(str(files[0]), "causal-lm", "auto", "auto", api_name="/load_model")
        api.predict(handle_file(str(files[1])), None, 0.1, 0, 64, api_name="/load_data")
        status, loss, summary = api.predict(["RED"], *SETTINGS, 1, 3, 8, 64, 0, 2, api_name="/train")
        assert "<b>Done.</b>" in status and summary["data"][0][0] == "RED full (ffn)"
        assert '"RED full (ffn) · train"' in loss["plot"]
        job = api.submit(["RED"], *SETTINGS, 1, 5000, 4, 64, 0, 0, api_name="/train")
        for _ in range(300):  # until the worker reports steps
            if any("step" in str(update) for update in job.outputs()):
                break
            time.sleep(0.1)
        assert "Stopping" in api.predict(api_name="/stop")
        status, _, summary = job.result(timeout=120)
        assert "<b>Stopped.</b>" in status and summary["data"][-1][-1] == "stopped by user"
        shown, cards, table = api.predict("red cat runs", None, ["RED full (ffn)"], 8, api_name="/compare")
        assert "red cat runs" in shown and [row[0] for row in table["data"]] == ["base", "RED full (ffn)"]
        assert len(set(forking_spaces.worker_pids)) == 1 and forking_spaces.durations == [300, 300, 90]
    finally:
        demo.close()
