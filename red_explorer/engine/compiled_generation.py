"""Compiled generation: a static KV cache and the decoding step's forward through ``torch.compile``.

A small model's greedy decoding on a GPU is bound by kernel launches: one forward per token, each a few dozen
small kernels. Transformers' static cache keeps every decoding step the same shape, so the step compiles once
(CUDA graphs in ``reduce-overhead`` mode) and replays; the edits' forward hooks are traced into that graph.
Attaching, disabling or detaching an edit changes what the graph guards on, so the next call recompiles rather
than replaying a stale graph (tested). The prompt's forward (prefill) stays eager. On a CPU the same switch
gives the same tokens (tested) but does not pay (slower than eager with the tiny model).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from red_explorer.engine.compiled import check_compile_mode

RECOMPILE_LIMIT = 64  # graphs kept per compiled call: one per edit state and cache length met in a session


def network(model: nn.Module) -> nn.Module:
    """The transformers model under a PEFT wrapper (or ``model`` itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def check_compilable(model: nn.Module) -> None:
    """ValueError unless transformers can decode ``model`` with a static cache and a compiled forward."""
    inner = network(model)
    name = type(inner).__name__
    supports_cache = getattr(inner, "_supports_default_dynamic_cache", lambda: False)()
    if not (getattr(inner, "_can_compile_fullgraph", False) and supports_cache):
        raise ValueError(
            f"{name} cannot generate with a static KV cache and a compiled forward (transformers does not support "
            "it for this architecture): leave compile off for this model"
        )
    quantizer = getattr(inner, "hf_quantizer", None)
    if quantizer is not None and not quantizer.is_compileable:
        raise ValueError(
            f"this model's quantization ({type(quantizer).__name__}) cannot be compiled: leave compile off, or load "
            "the model unquantized"
        )


@contextmanager
def compiled_generation(model: nn.Module, mode: str) -> Iterator[dict]:
    """Yields ``generate``'s extra keyword arguments for compiled decoding in ``mode`` (none when ``mode`` is empty:
    eager, exactly as without this block). Inside, graphs compile with guards on the modules' hooks: torch.compile
    skips those by default, and a graph compiled before an edit was attached would be replayed without it."""
    if not mode:
        yield {}
        return
    check_compile_mode(mode)
    check_compilable(model)
    from transformers import CompileConfig

    config = CompileConfig(mode=mode)
    config._compile_all_devices = True  # asked for: compile on every device (transformers' default: GPUs only)
    limit = max(torch._dynamo.config.cache_size_limit, RECOMPILE_LIMIT)
    with torch._dynamo.config.patch(skip_nnmodule_hook_guards=False, cache_size_limit=limit):
        yield {"cache_implementation": "static", "compile_config": config}
