"""Finding the modules whose outputs RED edits, for each transformer family."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from torch import nn
from transformers.pytorch_utils import Conv1D

from red_explorer.core.red.config import RedConfig


@dataclass(frozen=True)
class SiteScheme:
    """Module-name patterns of one architecture family; group 1 captures the layer index."""

    family: str
    ffn: str
    attn: str
    ffn_bias_flag: str | None = None  # config attribute that gives the FFN site a bias slot
    attn_bias_flag: str | None = None


SCHEMES = (
    SiteScheme("gpt2", r"(?:.*\.)?h\.(\d+)\.mlp\.c_proj", r"(?:.*\.)?h\.(\d+)\.attn\.c_proj"),
    SiteScheme(
        "llama",  # Llama, Qwen2, Mistral, Gemma, SmolLM, ...
        r"(?:.*\.)?layers\.(\d+)\.mlp\.down_proj",
        r"(?:.*\.)?layers\.(\d+)\.self_attn\.o_proj",
        ffn_bias_flag="mlp_bias",
        attn_bias_flag="attention_bias",
    ),
    SiteScheme(
        "bert",  # BERT, RoBERTa, MiniLM
        r"(?:.*\.)?encoder\.layer\.(\d+)\.output\.dense",
        r"(?:.*\.)?encoder\.layer\.(\d+)\.attention\.output\.dense",
    ),
    SiteScheme(
        "gpt-neox",
        r"(?:.*\.)?layers\.(\d+)\.mlp\.dense_4h_to_h",
        r"(?:.*\.)?layers\.(\d+)\.attention\.dense",
        attn_bias_flag="attention_bias",
    ),
    SiteScheme("opt", r"(?:.*\.)?layers\.(\d+)\.fc2", r"(?:.*\.)?layers\.(\d+)\.self_attn\.out_proj"),
    SiteScheme("phi", r"(?:.*\.)?layers\.(\d+)\.mlp\.fc2", r"(?:.*\.)?layers\.(\d+)\.self_attn\.dense"),
)

KIND_NAMES = {"ffn": "FFN", "attn": "attention"}
OVERRIDE_HINT = (
    "Pass the modules yourself: RedConfig(target_modules=r'...regex over module names...') "
    "or a list of exact names from model.named_modules() (CLI: --target-modules)."
)


@dataclass(frozen=True)
class Site:
    """One edited module: its dotted name, kind ('ffn', 'attn' or 'custom') and layer index."""

    name: str
    kind: str
    layer_index: int


def output_size(module: nn.Module) -> int:
    """Width of a module's output (the length of its RED vectors)."""
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, Conv1D):
        return module.nf
    raise TypeError(f"RED edits Linear or Conv1D outputs; {type(module).__name__} is neither")


def _experts_note(names: list[str]) -> str:
    experts = any(name.endswith(".experts") for name in names)
    return " Its FFN blocks are mixtures of experts, with no single dense output per layer." if experts else ""


def find_scheme(model: nn.Module) -> SiteScheme:
    """The first known family whose FFN pattern matches a module of this model, else whose attention pattern does
    (a model whose every FFN is a mixture of experts, e.g. Mixtral, still has RED's attention site)."""
    names = [name for name, _ in model.named_modules()]
    for kind in ("ffn", "attn"):
        for scheme in SCHEMES:
            if any(re.fullmatch(getattr(scheme, kind), name) for name in names):
                return scheme
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    why = _experts_note(names)
    raise ValueError(f"RED does not know where the FFN output is in a '{model_type}' model.{why} {OVERRIDE_HINT}")


def _layer_index(name: str) -> int:
    numbers = re.findall(r"\.(\d+)\.", f".{name}.")
    return int(numbers[0]) if numbers else -1


def _override_sites(model: nn.Module, target: str | list[str]) -> list[Site]:
    names = [name for name, _ in model.named_modules() if name]
    if isinstance(target, str):
        chosen = [name for name in names if re.fullmatch(target, name)]
    else:
        missing = sorted(set(target) - set(names))
        if missing:
            raise ValueError(f"these target modules do not exist in the model: {missing[:5]}")
        chosen = list(target)
    return [Site(name, "custom", _layer_index(name)) for name in chosen]


def find_sites(model: nn.Module, config: RedConfig) -> list[Site]:
    """The sites a config selects, in module order; raises a helpful ValueError when there are none."""
    if config.target_modules is not None:
        sites = _override_sites(model, config.target_modules)
    else:
        scheme = find_scheme(model)
        sites = []
        for name, _ in model.named_modules():
            for kind in config.sites:
                match = re.fullmatch(getattr(scheme, kind), name)
                if match:
                    sites.append(Site(name, kind, int(match.group(1))))
    if config.layers is not None:
        sites = [site for site in sites if site.layer_index in config.layers]
    if not sites:
        report = site_report(model, config)
        detail = report.message() if not report.complete else OVERRIDE_HINT
        why = _experts_note([name for name, _ in model.named_modules()]) if "ffn" in config.sites else ""
        if why and "attn" not in config.sites:
            why += " sites=['attn'] (CLI: --sites attn) edits each layer's attention output instead."
        raise ValueError(f"no module matches this RED config ({config.to_dict()}).{why} {detail}")
    for site in sites:
        output_size(model.get_submodule(site.name))  # raises for unsupported module types
    return sites


# ---------------------------------------------------------------- which layers a config leaves unedited


@dataclass(frozen=True)
class SiteReport:
    """Which layers a config's sites reach, per kind; ``unedited`` names the layers without such a site.

    A layer is a module named like the family's layer pattern (``model.layers.3``) inside a stack that
    holds sites. Mixture-of-experts layers (Qwen2-MoE, Qwen3-MoE, DeepSeek-V3) have no dense
    ``mlp.down_proj``, so an FFN edit skips them.
    """

    layers: tuple[str, ...] = ()  # the layers the config asks for, in module order
    unedited: dict[str, tuple[str, ...]] = field(default_factory=dict)  # kind -> layers without that site
    site_names: dict[str, str] = field(default_factory=dict)  # kind -> the site module's name in a layer
    candidates: tuple[str, ...] = ()  # Linear/Conv1D modules of unedited layers named like the site

    @property
    def complete(self) -> bool:
        return not any(self.unedited.values())

    def message(self, title: str = "RED") -> str:
        """Which layers stay unedited and how to reach them (empty when every layer is edited)."""
        parts = [
            f"{title} finds no {KIND_NAMES[kind]} site ('{self.site_names[kind]}') in {len(layers)} of "
            f"{len(self.layers)} layers ({', '.join(layers)}), so they stay unedited."
            for kind, layers in self.unedited.items()
            if layers
        ]
        if not parts:
            return ""
        example = f", e.g. {list(self.candidates)}" if self.candidates else ""
        return (
            " ".join(parts) + " To edit them too, pass target_modules (a regex over module names, or a list of "
            f"names from model.named_modules()) that names the edited modules and theirs{example}. "
            "CLI: --target-modules."
        )


def _split_pattern(pattern: str) -> tuple[str, str]:
    """(the pattern of the layer modules, the site's name inside a layer such as 'mlp.down_proj')."""
    cut = pattern.index(r"(\d+)") + len(r"(\d+)")
    return pattern[:cut], pattern[cut:].replace("\\", "").removeprefix(".")


def site_report(model: nn.Module, config: RedConfig) -> SiteReport:
    """Which layers ``config`` edits and which it leaves out; empty for explicit ``target_modules``."""
    if config.target_modules is not None:
        return SiteReport()
    scheme = find_scheme(model)
    names = [name for name, _ in model.named_modules()]
    layer_pattern, _ = _split_pattern(scheme.ffn)
    layers = {}  # layer module name -> index
    for name in names:
        match = re.fullmatch(layer_pattern, name)
        if match and (config.layers is None or int(match.group(1)) in config.layers):
            layers[name] = int(match.group(1))
    reached = {kind: {_site_layer(getattr(scheme, kind), name) for name in names} - {None} for kind in config.sites}
    stacks = {name.rsplit(".", 1)[0] for name in set().union(*reached.values())}
    layers = {name: index for name, index in layers.items() if name.rsplit(".", 1)[0] in stacks}
    unedited = {kind: tuple(name for name in layers if name not in reached[kind]) for kind in config.sites}
    site_names = {kind: _split_pattern(getattr(scheme, kind))[1] for kind in config.sites}
    return SiteReport(tuple(layers), unedited, site_names, _candidates(model, unedited, site_names))


def _candidates(model: nn.Module, unedited: dict[str, tuple[str, ...]], site_names: dict[str, str]):
    """Up to four editable modules inside unedited layers whose last name matches the site's (e.g. a shared
    expert's ``down_proj``)."""
    wanted = [(f"{layer}.", "." + site_names[kind].rsplit(".", 1)[-1]) for kind in unedited for layer in unedited[kind]]
    found = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | Conv1D)
        and any(name.startswith(start) and name.endswith(end) for start, end in wanted)
    ]
    return tuple(found[:4])


def _site_layer(pattern: str, name: str) -> str | None:
    """The name of the layer that holds site ``name`` (None when ``name`` is no such site)."""
    match = re.fullmatch(pattern, name)
    return name[: match.end(1)] if match else None


def unedited_layers(model: nn.Module, config: RedConfig) -> list[int]:
    """Indices of the layers ``config`` asks for where some requested site kind is missing (sorted)."""
    report = site_report(model, config)
    missing = set().union(*report.unedited.values()) if report.unedited else set()
    return sorted({int(name.rsplit(".", 1)[-1]) for name in missing})  # layer names end with their index


def warn_unedited(model: nn.Module, config: RedConfig, title: str = "RED") -> SiteReport:
    """A UserWarning naming the layers ``config`` leaves unedited and how to target them; returns the report."""
    report = site_report(model, config)
    if not report.complete:
        warnings.warn(report.message(title), UserWarning, stacklevel=3)
    return report
