"""The Space's GPU grant (ZeroGPU): events that compute on the model run inside ``spaces.GPU``, sized to their work.

On ZeroGPU hardware CUDA exists only inside functions decorated with ``spaces.GPU`` (the ``spaces`` package,
installed on every ZeroGPU Space). Off ZeroGPU nothing is imported and every event stays as it is.
"""

from __future__ import annotations

from collections.abc import Callable

from red_explorer.models.loading import space_gpu_grant

# handler (its module in app/ui/handlers, then its name) -> the longest it may hold the GPU, in seconds;
# ZeroGPU refuses more than about 300 s, and a shorter grant is served sooner
GPU_SECONDS = {
    "model.run_demo": 240,  # a one-minute demo: sample, training, first generations
    "train.train": 300,
    "ablate.ablate": 300,
    "sweep.sweep": 300,
    "compare.compare": 90,
    "explore.generate": 60,
    "explore.regenerate": 60,
    "explore.dose": 90,
    "explore.drift": 60,
    "explore.layers": 120,
    "explore.combine": 60,
    "explore.control_vector": 60,
    "inspect.inspect": 30,
    "inspect.inspect_if_any": 30,
    "inspect.tare_view": 30,
    "export.export_merged": 90,  # the merged model is checked against the edited one
    "export.import_edits": 30,  # attached once to the base to validate it
}


def gpu_seconds(handler: Callable) -> int | None:
    """How long ``handler`` may hold the GPU, or None when it does not compute on the model."""
    return GPU_SECONDS.get(f"{handler.__module__.rsplit('.', 1)[-1]}.{handler.__name__}")


def gpu_task(event: Callable, handler: Callable) -> Callable:
    """``event`` (the Gradio function made from ``handler``) inside a GPU grant on ZeroGPU; else ``event`` itself."""
    seconds = gpu_seconds(handler)
    if seconds is None or not space_gpu_grant():
        return event
    try:
        import spaces
    except ImportError as error:
        raise ImportError(
            "SPACES_ZERO_GPU is set but the `spaces` package is missing: pip install spaces (ZeroGPU Spaces have it)"
        ) from error
    return spaces.GPU(duration=seconds)(event)
