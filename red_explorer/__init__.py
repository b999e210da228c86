"""RED Explorer: representation editing (RED) for Hugging Face transformers.

The public API, in PEFT's terms: configs, attach / detach, a disabled context, save / load, merge /
unmerge, ``merge_and_unload``, ``save_merged``, the edit bank with per-row edits, and swaps.
"""

from red_explorer import quiet_imports  # noqa: F401  (first: before transformers imports torchao)
from red_explorer.core.checkpoint import EditsFileError
from red_explorer.core.merged import save_merged
from red_explorer.core.method import MergeError, Method
from red_explorer.core.red.bank import EditBank, per_row_edits, swap_edits
from red_explorer.core.red.config import RedConfig
from red_explorer.core.red.edit import (
    attach_red,
    detach_red,
    red_disabled,
    red_parameter_count,
    red_vectors,
    trainable_parameter_count,
)
from red_explorer.core.red.merge import merge_red, unmerge_red
from red_explorer.core.registry import (
    METHODS,
    MethodSpec,
    get_method,
    load_edits,
    load_method,
    merge_and_unload,
    save_edits,
)
from red_explorer.core.tare.config import TareConfig
from red_explorer.core.tare.edit import attach_tare, detach_tare, tare_disabled
from red_explorer.models.loading import LoadedModel, ModelLoadError, load_model
from red_explorer.version import __version__

__all__ = [
    "METHODS",
    "EditBank",
    "EditsFileError",
    "LoadedModel",
    "MergeError",
    "Method",
    "MethodSpec",
    "ModelLoadError",
    "RedConfig",
    "TareConfig",
    "__version__",
    "attach_red",
    "attach_tare",
    "detach_red",
    "detach_tare",
    "get_method",
    "load_edits",
    "load_method",
    "load_model",
    "merge_and_unload",
    "merge_red",
    "per_row_edits",
    "red_disabled",
    "red_parameter_count",
    "red_vectors",
    "save_edits",
    "save_merged",
    "swap_edits",
    "tare_disabled",
    "trainable_parameter_count",
    "unmerge_red",
]
