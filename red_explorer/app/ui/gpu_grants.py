"""How long each handler that computes on the model may hold a ZeroGPU grant."""

from __future__ import annotations

from collections.abc import Callable

# handler (its module in app/ui/handlers, then its name) -> the longest it may hold the GPU, in seconds;
# ZeroGPU refuses more than about 300 s, and a shorter grant is served sooner
GPU_SECONDS = {
    "model.run_demo": 240,  # a one-minute demo: sample, training, first generations
    "train.train": 300,
    "ablate.ablate": 300,
    "sweep.sweep": 300,
    "compare.compare": 90,
    "gallery.generate_live": 90,  # Compare's generation, on a gallery run's prompt
    "explore.generate": 60,
    "explore.regenerate": 60,
    "explore.dose": 90,
    "explore.drift": 60,
    "explore.layers": 120,
    "explore.combine": 60,
    "explore.control_vector": 60,
    "inspect.tare_view": 30,  # (not inspect.inspect nor inspect_if_any: they read RED vectors from the run's files)
    "export.export_merged": 90,  # the merged model is checked against the edited one
    "export.import_edits": 30,  # attached once to the base to validate it
}


def handler_name(handler: Callable) -> str:
    """'train.train': the handler's module in app/ui/handlers, then its name."""
    return f"{handler.__module__.rsplit('.', 1)[-1]}.{handler.__name__}"
