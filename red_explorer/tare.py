"""TARE, token-aware representation editing: a per-token top-k mix of diagonal editors after each site."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial

import torch
from torch import nn

from .config import RedConfig
from .edit import has_red
from .sites import Site, find_sites, output_size

SCALE = "tare_scale"
BIAS = "tare_bias"
SELECTOR = "tare_selector"
TENSOR_KINDS = (SCALE, BIAS, SELECTOR)
STATE_ATTRIBUTE = "_tare_state"
SELECTOR_INIT_STD = 0.02


@dataclass
class TareConfig:
    """Where TARE edits a model and how large its pool of editors is.

    Per site, E editors (scale_e, bias_e) and a selector (E, H). For each token's output h:
    scores = selector · h, S = top-k(scores), w = softmax(scores[S]),
    TARE(h) = Σ_{e ∈ S} w_e (scale_e ⊙ h + bias_e).
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


@dataclass
class TareRouting:
    """Which editors each token chose, recorded during one forward pass; one row per edited site."""

    site_names: list[str]
    layer_indices: list[int]
    selected: torch.Tensor  # (sites, T, k) long: editor ids of the first sequence, best first
    weights: torch.Tensor  # (sites, T, k): their mixing weights (each row sums to 1)
    usage: torch.Tensor  # (sites, E): fraction of the (unmasked) tokens that chose each editor; rows sum to k


@dataclass
class TareState:
    """What TARE keeps on an edited model (``model._tare_state``)."""

    config: TareConfig
    sites: list[Site]
    handles: list = field(default_factory=list)
    enabled: bool = True
    recording: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None  # site -> (selected, weights)


def get_tare_state(model: nn.Module) -> TareState:
    state = getattr(model, STATE_ATTRIBUTE, None)
    if state is None:
        raise ValueError("this model carries no TARE edits: call attach_tare(model, TareConfig()) first")
    return state


def has_tare(model: nn.Module) -> bool:
    return getattr(model, STATE_ATTRIBUTE, None) is not None


def route(hidden: torch.Tensor, selector: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best editors of each token and their weights: softmax over the k selected scores."""
    scores = hidden @ selector.T  # (..., E)
    top_scores, selected = scores.topk(top_k, dim=-1)  # (..., k)
    return selected, top_scores.softmax(dim=-1)


def mix_editors(
    hidden: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, selected: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Σ_j w_j (scale_j ⊙ h + bias_j), written as h + h ⊙ (w @ (scale − 1)) + w @ bias.

    The weights sum to 1, so both forms agree; the second is exactly h when scale = 1 and bias = 0.
    """
    dense = torch.zeros(*weights.shape[:-1], scale.shape[0], dtype=weights.dtype, device=weights.device)
    dense = dense.scatter(-1, selected, weights)  # (..., E), zero for unselected editors
    return hidden + torch.addcmul(dense @ bias, hidden, dense @ (scale - 1))  # (..., H)


def _edit_output(state: TareState, site_name: str, module: nn.Module, inputs, output: torch.Tensor):
    """TARE(h) on the module output h: (B, T, H)."""
    if not state.enabled:
        return None
    scale, bias, selector = (module._parameters[kind].to(output.dtype) for kind in TENSOR_KINDS)
    selected, weights = route(output, selector, state.config.top_k)
    if state.recording is not None:
        state.recording[site_name] = (selected.detach(), weights.detach())
    return mix_editors(output, scale, bias, selected, weights)


def attach_tare(model: nn.Module, config: TareConfig | None = None) -> list[Site]:
    """Add TARE editors and selectors to every site of ``config`` (mutates ``model``) and freeze the base.

    Registered on the edited module as ``tare_scale`` (E, H) ones, ``tare_bias`` (E, H) zeros and
    ``tare_selector`` (E, H) normal(0, 0.02): the untouched edit is exactly the identity.
    Returns the edited sites.
    """
    if has_tare(model):
        raise ValueError("this model already carries TARE edits: call detach_tare(model) first")
    if has_red(model):
        raise ValueError("this model carries RED edits: detach_red(model) before attaching TARE")
    config = config or TareConfig()
    sites = find_sites(model, config.site_config())
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    state = TareState(config=config, sites=sites)
    dtype = getattr(torch, config.vector_dtype)
    for site in sites:
        module = model.get_submodule(site.name)
        shape, device = (config.num_editors, output_size(module)), module.weight.device
        selector = torch.randn(shape, device=device) * SELECTOR_INIT_STD
        module.register_parameter(SCALE, nn.Parameter(torch.ones(shape, dtype=dtype, device=device)))
        module.register_parameter(BIAS, nn.Parameter(torch.zeros(shape, dtype=dtype, device=device)))
        module.register_parameter(SELECTOR, nn.Parameter(selector.to(dtype)))
        state.handles.append(module.register_forward_hook(partial(_edit_output, state, site.name)))
    setattr(model, STATE_ATTRIBUTE, state)
    return sites


def detach_tare(model: nn.Module) -> None:
    """Remove every TARE hook and tensor: the model is exactly the base again."""
    state = get_tare_state(model)
    for handle in state.handles:
        handle.remove()
    for site in state.sites:
        module = model.get_submodule(site.name)
        for kind in TENSOR_KINDS:
            module._parameters.pop(kind, None)
    delattr(model, STATE_ATTRIBUTE)


@contextmanager
def tare_disabled(model: nn.Module) -> Iterator[None]:
    """Inside this block the model computes exactly the base model's outputs."""
    state = get_tare_state(model)
    previous, state.enabled = state.enabled, False
    try:
        yield
    finally:
        state.enabled = previous


def tare_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The TARE tensors by state_dict name (``<module>.tare_scale`` / ``.tare_bias`` / ``.tare_selector``)."""
    state = get_tare_state(model)
    parameters = {}
    for site in state.sites:
        module = model.get_submodule(site.name)
        for kind in TENSOR_KINDS:
            parameters[f"{site.name}.{kind}"] = module._parameters[kind]
    return parameters


def tare_parameter_count(model: nn.Module) -> int:
    """Exactly the number of TARE parameters: sites · 3 · E · H."""
    return sum(parameter.numel() for parameter in tare_parameters(model).values())


def merge_tare(model: nn.Module) -> None:
    """Always refuses: a token-dependent edit has no single weight matrix to fold into."""
    raise ValueError(
        "TARE edits cannot be merged into the weights: each token is routed to its own mix of editors, "
        "so the edit depends on the token and no fixed W' = diag(scale)·W exists. Save the TARE edits "
        "(save_tare) and attach them at load time (load_tare) instead."
    )


def editor_magnitudes(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Per site, how far each editor moved from the identity: {"scale": mean |scale−1|, "bias": mean |bias|}, (E,)."""
    magnitudes = {}
    with torch.no_grad():
        for site in get_tare_state(model).sites:
            module = model.get_submodule(site.name)
            scale, bias = module._parameters[SCALE].float(), module._parameters[BIAS].float()
            magnitudes[site.name] = {
                "scale": (scale - 1).abs().mean(dim=-1).cpu(),
                "bias": bias.abs().mean(dim=-1).cpu(),
            }
    return magnitudes


def tare_routing(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TareRouting:
    """Run one no-grad forward pass (in eval mode) and report the routing the hooks recorded.

    ``selected`` and ``weights`` are those of the first sequence; ``usage`` counts every token whose
    ``attention_mask`` is 1.
    """
    state = get_tare_state(model)
    if not state.enabled:
        raise ValueError("TARE is disabled here (inside tare_disabled): there is no routing to record")
    was_training, state.recording = model.training, {}
    model.eval()
    try:
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=attention_mask)
        recorded = state.recording
    finally:
        state.recording = None
        model.train(was_training)
    mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    selected, weights, usage = [], [], []
    for site in state.sites:
        site_selected, site_weights = recorded[site.name]
        site_selected = site_selected.reshape(*input_ids.shape, -1)  # (B, T, k)
        selected.append(site_selected[0].cpu())
        weights.append(site_weights.reshape(*input_ids.shape, -1)[0].float().cpu())
        chosen = site_selected[mask.to(site_selected.device)].flatten()
        counts = torch.bincount(chosen, minlength=state.config.num_editors).float().cpu()
        usage.append(counts / max(int(mask.sum()), 1))
    return TareRouting(
        site_names=[site.name for site in state.sites],
        layer_indices=[site.layer_index for site in state.sites],
        selected=torch.stack(selected),
        weights=torch.stack(weights),
        usage=torch.stack(usage),
    )
