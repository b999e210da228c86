"""The Space's GPU grant (ZeroGPU): handlers that compute on the model do their work inside ``spaces.GPU``.

On ZeroGPU hardware CUDA exists only inside functions decorated with ``spaces.GPU`` (the ``spaces`` package,
installed on every ZeroGPU Space), which run in a forked worker process: ``zero_gpu`` sends each listed handler's
work there and takes its results back. Off ZeroGPU nothing is imported and every handler runs as it is.
"""

from __future__ import annotations

from collections.abc import Callable

from red_explorer.app.ui.gpu_grants import GPU_SECONDS, handler_name
from red_explorer.app.ui.zero_gpu import grant_seconds, granted_work, in_worker
from red_explorer.models.loading import space_gpu_grant


def gpu_seconds(handler: Callable) -> int | None:
    """How long ``handler`` may hold the GPU, or None when it does not compute on the model."""
    return GPU_SECONDS.get(handler_name(handler))


def gpu_task(handler: Callable) -> Callable:
    """On ZeroGPU, for a handler that computes on the model, its stand-in whose work runs in the GPU worker (all
    of them in one granted function, so one worker and its loaded models serve every tab); else ``handler``."""
    seconds = gpu_seconds(handler)
    if seconds is None or not space_gpu_grant():
        return handler
    try:
        import spaces
    except ImportError as error:
        raise ImportError(
            "SPACES_ZERO_GPU is set but the `spaces` package is missing: pip install spaces (ZeroGPU Spaces have it)"
        ) from error
    stand_in = in_worker(handler, spaces.GPU(duration=grant_seconds)(granted_work))
    stand_in.gpu_seconds = seconds
    return stand_in
