"""Configuration of a TARE edit: where it goes and how large its pool of editors is."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from red_explorer.core.red.config import RedConfig


@dataclass
class TareConfig:
    """Where TARE edits a model and how large its pool of editors is.

    Per site, E editors (scale_e, bias_e) and a selector (E, H). For each token's output h:
    p = softmax(selector · h) over all E editors, S = the k editors of largest p,
    TARE(h) = h + Σ_{e ∈ S} p_e ((scale_e − 1) ⊙ h + bias_e).
    The weights are not renormalised over S, so the selector learns for every k (k = 1 included), and
    the untrained edit (scale = 1, bias = 0) is exactly the identity.
    """

    num_editors: int = field(default=4, metadata={"help": "E: size of the editor pool per site"})
    top_k: int = field(default=2, metadata={"help": "k: editors active per token (1 <= k <= E)"})
    sites: list[str] = field(default_factory=lambda: ["ffn"], metadata={"help": "'ffn', 'attn' or both"})
    layers: list[int] | None = field(default=None, metadata={"help": "layer indices to edit; None = all"})
    target_modules: str | list[str] | None = field(
        default=None,
        metadata={"help": "override: a regex over module names, or a list of exact module names"},
    )
    vector_dtype: str = field(default="float32", metadata={"help": "dtype of the editors and the selector"})

    def __post_init__(self) -> None:
        if isinstance(self.num_editors, bool) or not isinstance(self.num_editors, int) or self.num_editors < 1:
            raise ValueError(f"num_editors must be a positive integer, got {self.num_editors!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or not 1 <= self.top_k <= self.num_editors:
            raise ValueError(f"top_k must be an integer in 1..num_editors ({self.num_editors}), got {self.top_k!r}")
        sites = self.site_config()  # validates sites, layers, target_modules and vector_dtype like RED does
        self.sites, self.layers, self.target_modules = sites.sites, sites.layers, sites.target_modules

    def site_config(self) -> RedConfig:
        """The same sites as a RedConfig, for ``find_sites``."""
        return RedConfig(
            sites=self.sites, layers=self.layers, target_modules=self.target_modules, vector_dtype=self.vector_dtype
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TareConfig:
        known = {name for name in cls.__dataclass_fields__}
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"unknown TARE config keys {extra}; expected some of {sorted(known)}")
        return cls(**data)
