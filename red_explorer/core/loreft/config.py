"""Configuration of a LoReFT edit: its rank, the prompt positions it edits, and the layers it sits on."""

from __future__ import annotations

from dataclasses import dataclass, field

SITES = ("block", "ffn")


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"LoReFT {name} must be a non-negative integer, got {value!r}")
    return value


@dataclass
class LoreftOptions:
    """LoReFT's settings; the defaults are ReFT's reference run (rank 8, first 7 + last 7 prompt tokens, all layers).

    ``site``: 'block' edits each decoder layer's output (the residual stream after the layer, as ReFT
    does); 'ffn' edits the FFN down-projection's output, RED's site.
    """

    rank: int = field(default=8, metadata={"help": "r: rows of R and W (the edited subspace's dimension)"})
    first: int = field(default=7, metadata={"help": "edit the first p prompt tokens"})
    last: int = field(default=7, metadata={"help": "edit the last s prompt tokens"})
    site: str = field(default="block", metadata={"help": "block (decoder layer output) | ffn (RED's site)"})
    layers: list[int] | None = field(default=None, metadata={"help": "layer indices to edit; None = all"})

    def __post_init__(self) -> None:
        if _count(self.rank, "rank") < 1:
            raise ValueError("LoReFT rank must be at least 1 (ReFT's reference run uses 8)")
        if _count(self.first, "first") + _count(self.last, "last") < 1:
            raise ValueError("LoReFT edits no position with first=0 and last=0: set first or last to at least 1")
        if self.site not in SITES:
            raise ValueError(f"LoReFT site must be one of {SITES}, got {self.site!r}")
        if self.layers is not None:
            if isinstance(self.layers, int | str) or not all(
                isinstance(index, int) and not isinstance(index, bool) and index >= 0 for index in self.layers
            ):
                raise ValueError(f"LoReFT layers must be a list of layer indices (>= 0) or None, got {self.layers!r}")
            self.layers = sorted(set(self.layers))
            if not self.layers:
                raise ValueError("LoReFT layers is empty: list at least one layer index, or None for all")

    @property
    def positions(self) -> str:
        """ReFT's name of the positions: 'f7+l7', 'l1', 'f1'."""
        parts = ([f"f{self.first}"] if self.first else []) + ([f"l{self.last}"] if self.last else [])
        return "+".join(parts)
