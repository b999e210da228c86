"""RED Explorer's web app: `python app.py` (also the entry point of a Hugging Face Space)."""

import os

from red_explorer.app.ui import build_demo
from red_explorer.app.ui.interface import DEFAULT_CONCURRENCY, launch_options
from red_explorer.models.loading import settle_hub_kernels

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
settle_hub_kernels()  # no hub kernels unless RED_EXPLORER_HUB_KERNELS=1: an offline GPU box must not fetch

demo = build_demo(preload=os.environ.get("RED_EXPLORER_PRELOAD", "1") != "0")

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        server_port=int(os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or 7860),
        **launch_options(),
    )
