"""RED Explorer's web app: `python app.py [--host H] [--port P] [--show-cli-runs]` (also a Hugging Face Space's entry
point). It listens on 127.0.0.1 unless told otherwise ($GRADIO_SERVER_NAME, --host); on a Space on 0.0.0.0."""

import os
import sys

from red_explorer.app.serving import serving
from red_explorer.app.ui import build_demo
from red_explorer.app.ui.interface import DEFAULT_CONCURRENCY, launch_options
from red_explorer.models.loading import settle_hub_kernels

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
settle_hub_kernels()  # no hub kernels unless RED_EXPLORER_HUB_KERNELS=1: an offline GPU box must not fetch

settings = serving(sys.argv[1:] if __name__ == "__main__" else [])
demo = build_demo(preload=os.environ.get("RED_EXPLORER_PRELOAD", "1") != "0", show_cli_runs=settings.show_cli_runs)

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY).launch(
        server_name=settings.host, server_port=settings.port, **launch_options()
    )
