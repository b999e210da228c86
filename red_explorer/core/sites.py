"""Finding the modules whose outputs RED edits, for each transformer family."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def find_scheme(model: nn.Module) -> SiteScheme:
    """The first known family whose FFN pattern matches a module of this model."""
    names = [name for name, _ in model.named_modules()]
    for scheme in SCHEMES:
        if any(re.fullmatch(scheme.ffn, name) for name in names):
            return scheme
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    raise ValueError(f"RED does not know where the FFN output is in a '{model_type}' model. {OVERRIDE_HINT}")


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
        raise ValueError(f"no module matches this RED config ({config.to_dict()}). {OVERRIDE_HINT}")
    for site in sites:
        output_size(model.get_submodule(site.name))  # raises for unsupported module types
    return sites
