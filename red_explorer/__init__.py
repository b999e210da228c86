"""RED Explorer: representation editing (RED) for Hugging Face transformers."""

__version__ = "0.1.0"

from .config import RedConfig  # noqa: E402
from .edit import (  # noqa: E402
    attach_red,
    detach_red,
    red_disabled,
    red_parameter_count,
    red_vectors,
    trainable_parameter_count,
)
from .merge import MergeError, merge_red, save_merged, unmerge_red  # noqa: E402
from .models import LoadedModel, ModelLoadError, load_model  # noqa: E402
from .saving import EditsFileError, load_edits, save_edits  # noqa: E402

__all__ = [
    "EditsFileError",
    "LoadedModel",
    "MergeError",
    "ModelLoadError",
    "RedConfig",
    "attach_red",
    "detach_red",
    "load_edits",
    "load_model",
    "merge_red",
    "red_disabled",
    "red_parameter_count",
    "red_vectors",
    "save_edits",
    "save_merged",
    "trainable_parameter_count",
    "unmerge_red",
]
