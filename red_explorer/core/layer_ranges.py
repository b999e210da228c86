"""Layer choices as people read them: all layers, or index ranges ("layers 0-2,5")."""

from __future__ import annotations

from collections.abc import Sequence


def layer_ranges(layers: Sequence[int] | None) -> str:
    """'all layers', or the indices with runs collapsed: [0, 1, 2, 5] -> 'layers 0-2,5'."""
    if layers is None:
        return "all layers"
    runs: list[list[int]] = []
    for index in sorted(set(layers)):
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    if not runs:
        return "no layers"
    return "layers " + ",".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def layers_suffix(layers: Sequence[int] | None) -> str:
    """What a method label adds for a layer choice: nothing for all layers, else ' · layers 26-29'."""
    return "" if layers is None else f" · {layer_ranges(layers)}"
