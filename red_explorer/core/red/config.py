"""Configuration of a RED edit: where it goes and which vectors it learns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

SITES = ("ffn", "attn")
VECTOR_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class RedConfig:
    """Where RED edits a model and which of its two vectors exist.

    RED(h) = scale ⊙ h + bias, on the output of every chosen site module.
    """

    sites: list[str] = field(default_factory=lambda: ["ffn"], metadata={"help": "'ffn', 'attn' or both"})
    use_scale: bool = field(default=True, metadata={"help": "learn the scaling vector"})
    use_bias: bool = field(default=True, metadata={"help": "learn the bias vector"})
    layers: list[int] | None = field(default=None, metadata={"help": "layer indices to edit; None = all"})
    target_modules: str | list[str] | None = field(
        default=None,
        metadata={"help": "override: a regex over module names, or a list of exact module names"},
    )
    vector_dtype: str = field(default="float32", metadata={"help": "dtype of the edit vectors"})

    def __post_init__(self) -> None:
        if isinstance(self.sites, str):
            self.sites = [site.strip() for site in self.sites.split(",") if site.strip()]
        self.sites = list(self.sites)
        unknown = [site for site in self.sites if site not in SITES]
        if unknown or not self.sites:
            raise ValueError(f"sites must be a non-empty subset of {SITES}, got {self.sites!r}")
        if not (self.use_scale or self.use_bias):
            raise ValueError("RED needs at least one vector: set use_scale or use_bias to True")
        if self.layers is not None:
            self.layers = sorted({int(index) for index in self.layers})
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)
        if self.vector_dtype not in VECTOR_DTYPES:
            raise ValueError(f"vector_dtype must be one of {VECTOR_DTYPES}, got {self.vector_dtype!r}")

    @property
    def variant(self) -> str:
        """'full' (scale and bias), 'scale' (scale only) or 'bias' (bias only)."""
        if self.use_scale and self.use_bias:
            return "full"
        return "scale" if self.use_scale else "bias"

    @classmethod
    def from_variant(cls, variant: str, **kwargs) -> RedConfig:
        if variant not in ("full", "scale", "bias"):
            raise ValueError(f"variant must be 'full', 'scale' or 'bias', got {variant!r}")
        return cls(use_scale=variant != "bias", use_bias=variant != "scale", **kwargs)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RedConfig:
        known = {name for name in cls.__dataclass_fields__}
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"unknown RED config keys {extra}; expected some of {sorted(known)}")
        return cls(**data)
