"""Benchmark of switching edits on a loaded model (RED vs LoRA) and of the files each method writes."""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from torch import nn

from red_explorer.bench.serve import random_red_vectors, randomize_lora
from red_explorer.bench.setup import BenchModel, BenchShape
from red_explorer.bench.timing import storage_of, synchronize, timed
from red_explorer.core.red.bank import swap_edits
from red_explorer.core.red.edit import attach_red, detach_red
from red_explorer.core.registry import MethodSpec, apply_method, load_edits, save_edits
from red_explorer.core.tare.edit import attach_tare, detach_tare
from red_explorer.core.tare.saving import save_tare


def directory_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def _alternate(swap, targets: list, repeats: int, device: torch.device) -> list[float]:
    """Time ``swap(target)`` switching back and forth between the targets; milliseconds per switch."""
    swap(targets[0])  # warm-up: file cache, allocator
    synchronize(device)
    milliseconds = []
    for index in range(repeats):
        target = targets[(index + 1) % 2]
        milliseconds.append(timed(lambda target=target: swap(target), device) * 1e3)
    return milliseconds


def _red_edits(bench: BenchModel, folder: Path, repeats: int) -> dict:
    model = bench.model
    attach_red(model)
    directories = []
    for seed, label in ((1, "red_a"), (2, "red_b")):
        swap_edits(model, random_red_vectors(model, seed))
        directories.append(save_edits(model, folder / label, base_model=bench.name))
    in_memory = [random_red_vectors(model, 3), random_red_vectors(model, 4)]
    from_file = _alternate(lambda directory: swap_edits(model, directory), directories, repeats, bench.device)
    from_memory = _alternate(lambda vectors: swap_edits(model, vectors), in_memory, repeats, bench.device)
    detach_red(model)

    def reload(directory):
        detach_red(model)
        load_edits(model, directory)

    load_edits(model, directories[0])
    reattach = _alternate(reload, directories, repeats, bench.device)
    detach_red(model)
    return {
        "red_swap_ms": statistics.median(from_file),
        "red_swap_times_ms": from_file,
        "red_swap_from_memory_ms": statistics.median(from_memory),
        "red_detach_and_load_ms": statistics.median(reattach),
        "directories": directories,
    }


def _lora_adapters(bench: BenchModel, folder: Path, repeats: int) -> dict:
    """LoRA r=8: PEFT's in-place ``hotswap_adapter`` (its fastest switch) and load_adapter + set_adapter."""
    from peft.utils.hotswap import hotswap_adapter

    peft_model = apply_method(bench.model, MethodSpec("lora"), "causal-lm")
    directories = []
    for seed, label in ((5, "lora_a"), (6, "lora_b")):
        randomize_lora(peft_model, seed)
        peft_model.save_pretrained(folder / label)
        directories.append(folder / label)
    peft_model.eval()

    def hotswap(directory):
        hotswap_adapter(peft_model, str(directory), adapter_name="default", torch_device=str(bench.device))

    hot = _alternate(hotswap, directories, repeats, bench.device)
    names = iter(range(10**6))

    def load_and_set(directory):
        previous, name = peft_model.active_adapter, f"adapter{next(names)}"
        peft_model.load_adapter(str(directory), adapter_name=name)
        peft_model.set_adapter(name)
        peft_model.delete_adapter(previous)

    loaded = _alternate(load_and_set, directories, repeats, bench.device)
    peft_model.unload()
    return {
        "lora_swap_ms": statistics.median(hot),
        "lora_swap_times_ms": hot,
        "lora_load_adapter_ms": statistics.median(loaded),
        "directories": directories,
    }


def _tare_directory(bench: BenchModel, folder: Path) -> Path:
    attach_tare(bench.model)
    directory = save_tare(bench.model, folder / "tare_a", base_model=bench.name)
    detach_tare(bench.model)
    return directory


def checkpoint_bytes(model: nn.Module) -> int:
    """What a full fine-tuned checkpoint holds: every distinct weight tensor (tied ones once), in the compute dtype."""
    seen, total = set(), 0
    for parameter in model.parameters():
        storage = storage_of(parameter)
        pointer = storage.data_ptr() if storage is not None else id(parameter)
        if pointer not in seen:
            seen.add(pointer)
            total += parameter.numel() * parameter.element_size()
    return total


def bench_swap_and_sizes(bench: BenchModel, shape: BenchShape, out: Path) -> dict:
    """Item 4: switch time between two saved edits on a loaded model, and sizes on disk."""
    folder = out / "edits"
    red = _red_edits(bench, folder, shape.swap_repeats)
    lora = _lora_adapters(bench, folder, shape.swap_repeats)
    tare = _tare_directory(bench, folder)
    directories = {"red": red.pop("directories")[0], "lora": lora.pop("directories")[0], "tare": tare}
    files = {str(path.relative_to(out)): path.stat().st_size for path in sorted(folder.rglob("*")) if path.is_file()}
    sizes = {f"{name}_bytes": directory_bytes(directory) for name, directory in directories.items()}
    sizes["full_checkpoint_bytes"] = checkpoint_bytes(bench.model)
    sizes["red_directory"] = str(directories["red"].relative_to(out))
    sizes["lora_directory"] = str(directories["lora"].relative_to(out))
    sizes["tare_directory"] = str(directories["tare"].relative_to(out))
    return (
        red
        | lora
        | {"sizes": sizes, "files": files, "red_swap_over_lora_swap": red["red_swap_ms"] / lora["lora_swap_ms"]}
    )
