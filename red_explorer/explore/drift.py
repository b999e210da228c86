"""Token-level drift: per token, how far an edit moves the next-token distribution from the base, and towards what."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from red_explorer.core.registry import attached_method
from red_explorer.data.render import encode_prompt
from red_explorer.explore.measures import forward, kl_divergence, log_probabilities


@dataclass(frozen=True)
class TokenChange:
    """One candidate next token whose probability the edit changed."""

    token: str
    token_id: int
    base_probability: float
    edited_probability: float


@dataclass
class TokenDrift:
    """Per position t of a text: KL(edited ‖ base) of the next-token distributions after token t, and what moved.

    ``rises[t]`` / ``falls[t]`` are the candidates whose probability rose / fell most there. For
    TARE, ``editor_choice[t][site]`` lists the k editors token t chose at each site (best first)
    and ``editor_weights[t][site]`` their mixing weights; ``routing_sites`` names the sites.
    """

    tokens: list[str]
    token_ids: list[int]
    is_prompt: list[bool]
    kl: list[float]
    rises: list[list[TokenChange]]
    falls: list[list[TokenChange]]
    routing_sites: list[str] | None = None
    editor_choice: list[list[list[int]]] | None = None
    editor_weights: list[list[list[float]]] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def encode(tokenizer, text: str, prompt: str | None = None) -> tuple[torch.Tensor, int]:
    """Token ids (1, T) of ``prompt`` + ``text`` and the prompt's length in tokens.

    The prompt is tokenised exactly as generation feeds it (``encode_prompt``: a chat template writes its own
    BOS, the plain format gets the tokenizer's), then the text as its continuation, with no special tokens.
    A text without a prompt is tokenised as a prompt.
    """
    prompt_ids = encode_prompt(tokenizer, prompt) if prompt else []
    text_ids = tokenizer(text, add_special_tokens=False)["input_ids"] if prompt else encode_prompt(tokenizer, text)
    ids = list(prompt_ids) + list(text_ids)
    if not ids:
        raise ValueError("the text has no tokens: give a prompt or some text")
    return torch.tensor([ids], dtype=torch.long), len(prompt_ids)


def token_drift(
    model: nn.Module,
    tokenizer,
    text: str,
    prompt: str | None = None,
    top_k: int = 5,
) -> TokenDrift:
    """One forward with the edit and one inside its base behaviour (``Method.disabled``), compared per token.

    Works for every method with a base behaviour (RED, TARE, LoRA); full fine-tuning has none and
    is refused by its method. ``top_k`` candidates per position rise and fall.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    method = attached_method(model)
    input_ids, prompt_length = encode(tokenizer, text, prompt)
    batch = {"input_ids": input_ids}
    was_training = model.training
    model.eval()
    try:
        with method.disabled(model):
            base = log_probabilities(forward(model, batch).logits)[0]  # (T, V)
        edited = log_probabilities(forward(model, batch).logits)[0]  # (T, V)
    finally:
        model.train(was_training)
    if edited.dim() != 2:
        raise ValueError("token drift compares next-token distributions: use a causal language model")
    ids = input_ids[0].tolist()
    drift = TokenDrift(
        tokens=[tokenizer.decode([token_id]) for token_id in ids],
        token_ids=ids,
        is_prompt=[index < prompt_length for index in range(len(ids))],
        kl=kl_divergence(edited, base).cpu().tolist(),
        rises=_changes(tokenizer, base, edited, top_k, rising=True),
        falls=_changes(tokenizer, base, edited, top_k, rising=False),
    )
    if method.name == "tare":
        _add_routing(drift, model, input_ids)
    return drift


def _changes(tokenizer, base: torch.Tensor, edited: torch.Tensor, top_k: int, rising: bool) -> list[list[TokenChange]]:
    """Per position, the ``top_k`` tokens whose probability rose (or fell) most: base, edited (T, V) log probs."""
    base_probabilities, edited_probabilities = base.exp().cpu(), edited.exp().cpu()
    change = edited_probabilities - base_probabilities  # (T, V)
    _, indices = (change if rising else -change).topk(min(top_k, change.shape[-1]), dim=-1)  # (T, k)
    rows = []
    for position, candidates in enumerate(indices.tolist()):
        rows.append(
            [
                TokenChange(
                    token=tokenizer.decode([candidate]),
                    token_id=candidate,
                    base_probability=float(base_probabilities[position, candidate]),
                    edited_probability=float(edited_probabilities[position, candidate]),
                )
                for candidate in candidates
            ]
        )
    return rows


def _add_routing(drift: TokenDrift, model: nn.Module, input_ids: torch.Tensor) -> None:
    """TARE's editor choice per token and site, from ``tare_routing``."""
    from red_explorer.core.tare.routing import tare_routing

    routing = tare_routing(model, input_ids.to(next(model.parameters()).device))
    drift.routing_sites = routing.site_names
    drift.editor_choice = routing.selected.permute(1, 0, 2).tolist()  # (sites, T, k) -> (T, sites, k)
    drift.editor_weights = routing.weights.permute(1, 0, 2).tolist()
