"""Where the app listens and whether it shares the command line's runs: loopback unless told otherwise."""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from red_explorer.app.kept_runs import on_a_space

LOOPBACK = "127.0.0.1"
EVERY_ADDRESS = "0.0.0.0"  # what a Hugging Face Space needs
DEFAULT_PORT = 7860
SHOW_CLI_RUNS_ENV = "RED_EXPLORER_SHOW_CLI_RUNS"


@dataclass(frozen=True)
class Serving:
    host: str
    port: int
    show_cli_runs: bool


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.1, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app.py", description="Serve the RED Explorer app.")
    parser.add_argument(
        "--host",
        help=f"address to listen on (default $GRADIO_SERVER_NAME, else {LOOPBACK}; {EVERY_ADDRESS} on a Space)",
    )
    parser.add_argument("--port", type=int, help=f"port (default $PORT or $GRADIO_SERVER_PORT, else {DEFAULT_PORT})")
    parser.add_argument(
        "--show-cli-runs",
        action="store_true",
        help=f"offer the command line's runs for copying (loopback only; or ${SHOW_CLI_RUNS_ENV}=1)",
    )
    return parser


def serving(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> Serving:
    """The address, port and sharing the command line and environment ask for; SystemExit with the reason when
    the command line's runs would be shared beyond this machine."""
    args = _parser().parse_args(argv or [])
    host = args.host or environ.get("GRADIO_SERVER_NAME") or (EVERY_ADDRESS if on_a_space() else LOOPBACK)
    port = args.port or int(environ.get("PORT") or environ.get("GRADIO_SERVER_PORT") or DEFAULT_PORT)
    show = args.show_cli_runs or environ.get(SHOW_CLI_RUNS_ENV) == "1"
    if show and (on_a_space() or not is_loopback(host)):
        raise SystemExit(
            f"--show-cli-runs offers the command line's runs to every visitor, so it works only when the app "
            f"listens on this machine alone (--host {LOOPBACK}), not on {host}. Listen on {LOOPBACK}, or copy a run "
            f"by hand: `red-explorer runs export RUN --out DIR`, then load the zip in Export → Load edits."
        )
    return Serving(host, port, show)
