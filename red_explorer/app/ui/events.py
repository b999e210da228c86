"""Turning plain handlers into Gradio event functions: errors become messages, plain markers become updates."""

from __future__ import annotations

import inspect
import logging
from html import escape

import gradio as gr

from red_explorer.app.ui.gpu import gpu_task
from red_explorer.app.ui.handlers.common import (
    EXPECTED_ERRORS,
    ROW_COLOURS,
    Choices,
    ColumnWidths,
    Notice,
    Visible,
    coloured,
)
from red_explorer.app.ui.handlers.navigation import SelectTab, Unchanged

logger = logging.getLogger(__name__)
WARNING_SECONDS = 15


def _to_gradio(value):
    if isinstance(value, Choices):
        return gr.update(choices=value.shown(), value=value.value)
    if isinstance(value, Visible):
        return gr.update(visible=value.shown)
    if isinstance(value, ColumnWidths):
        return gr.update(column_widths=value.widths or None)
    if isinstance(value, SelectTab):
        return gr.update(selected=value.tab)
    if isinstance(value, Unchanged):
        return gr.skip()
    if ROW_COLOURS in getattr(value, "attrs", {}):  # a table of runs: each run's row in its colour
        return coloured(value)
    return value


def from_api_client() -> bool:
    """Whether the running event was sent by gradio_client (it marks its requests), not by the page."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    return getattr(request, "headers", {}).get("x-gradio-user") == "api"


def _shown(text: str) -> str:
    """A message as its reader gets it: HTML-escaped for the page (its message boxes render HTML), plain for API
    clients."""
    return text if from_api_client() else escape(text)


def _convert(outputs):
    if isinstance(outputs, Notice):
        gr.Warning(_shown(outputs.warning), duration=WARNING_SECONDS)
        outputs = outputs.outputs
    if isinstance(outputs, tuple):
        return tuple(_to_gradio(value) for value in outputs)
    return _to_gradio(outputs)


def _remember(args, error: BaseException) -> None:
    """Keep the reason on the session (first argument), for the event that restores the page after a failure."""
    if args and hasattr(args[0], "last_error"):
        args[0].last_error = str(error).strip() or type(error).__name__


def as_message(error: BaseException) -> gr.Error:
    """An exception as the error box the user sees (the page keeps working), or the plain text an API client gets."""
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, EXPECTED_ERRORS):
        text = str(error).strip() or type(error).__name__
    else:
        logger.exception("unexpected error in an event handler", exc_info=error)
        text = f"Something went wrong ({type(error).__name__}: {error}). The app still works; try again."
    return gr.Error(_shown(text), duration=20, print_exception=False)


def ui_event(handler):
    """Wrap ``handler`` for Gradio: same parameters, but ``progress`` defaults to gr.Progress()."""
    signature = inspect.signature(handler)
    work = gpu_task(handler)  # on ZeroGPU, the work of a handler that computes on the model runs in the GPU worker
    if inspect.isgeneratorfunction(handler):

        def event(*args):
            try:
                for outputs in work(*args):
                    yield _convert(outputs)
            except Exception as error:
                _remember(args, error)
                raise as_message(error) from error

    else:

        def event(*args):
            try:
                return _convert(work(*args))
            except Exception as error:
                _remember(args, error)
                raise as_message(error) from error

    parameters = [
        parameter.replace(default=gr.Progress()) if parameter.name == "progress" else parameter
        for parameter in signature.parameters.values()
    ]
    event.__signature__ = signature.replace(parameters=parameters)
    event.__name__, event.__doc__ = handler.__name__, handler.__doc__
    if hasattr(work, "gpu_seconds"):
        event.gpu_seconds = work.gpu_seconds
    return event


def busy_click(button: gr.Button, running: str, fn, inputs, outputs, **options):
    """``button.click(fn, inputs, outputs, **options)`` with ``button`` greyed out, saying ``running``, while the
    job runs (a click then would be dropped without a word) and given back when it ends, whether it finished,
    failed or stopped. Returns the job's event.

    The greying is the first link of the job's own chain: as a separate click event, the browser could send it
    after the job had ended, and the button stayed grey. The button is given back by ``.then`` and by ``.failure``:
    Gradio's page runs only the ``.failure`` links after an event that raised (a refusal such as "no data loaded")."""
    idle = button.value
    private = dict(api_visibility="private", show_progress="hidden", queue=False)
    greyed = button.click(lambda: gr.update(value=running, interactive=False), None, [button], **private)
    job = greyed.then(fn, inputs, outputs, **options)
    for ended in (job.then, job.failure):
        ended(lambda: gr.update(value=idle, interactive=True), None, [button], **private)
    return job


def group_busy_click(button: gr.Button, group: list[gr.Button], fn, inputs, outputs, **options):
    """``button.click(fn, inputs, outputs, **options)`` with every button of ``group`` greyed out (their text kept:
    a button may be an input of the job) while the job runs, and given back when it ends as in ``busy_click``."""
    private = dict(api_visibility="private", show_progress="hidden", queue=False)
    greyed = button.click(lambda: [gr.update(interactive=False)] * len(group), None, group, **private)
    job = greyed.then(fn, inputs, outputs, **options)
    for ended in (job.then, job.failure):
        ended(lambda: [gr.update(interactive=True)] * len(group), None, group, **private)
    return job
