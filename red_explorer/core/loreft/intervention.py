"""The LoReFT intervention: h + Rᵀ(W h + b − R h), with R's rows kept orthonormal."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import orthogonal


class UnitDiagonal(nn.Module):
    """Passes a stored (r, H) matrix on with its diagonal set to ±1 (its signs).

    The Householder map of ``orthogonal`` reads each column's sign off that diagonal, which gets no
    gradient; weight decay would still shrink it (−1 → −0.99, read as 0: a zero row of R). Placed
    before the orthogonal map, this keeps R orthonormal under any optimizer.
    """

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        diagonal = torch.eye(*stored.shape, dtype=torch.bool, device=stored.device)  # (r, H)
        return torch.where(diagonal, torch.where(stored < 0, -1.0, 1.0).to(stored.dtype), stored)

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        return value


class LoreftIntervention(nn.Module):
    """LoReFT(h) = h + Rᵀ(W h + b − R h) on hidden vectors h (..., H).

    R (r, H) has orthonormal rows (R Rᵀ = I): it is ``torch.nn.utils.parametrizations.orthogonal``'s
    Householder map of a stored matrix, so every optimizer step keeps it orthonormal. W (r, H) and
    b (r,) are free. The edit moves h only inside the r-dimensional row space of R, to W h + b there.
    W starts equal to R and b at zero, so the intervention starts as the identity (pyreft starts W at
    random). The parameters are float32 whatever the model's dtype; h is edited in float32 and cast back.
    """

    def __init__(self, hidden_size: int, rank: int, device: torch.device | None = None):
        super().__init__()
        if rank > hidden_size:
            raise ValueError(f"LoReFT rank {rank} exceeds the hidden size {hidden_size}: choose rank <= {hidden_size}")
        rotation = nn.Linear(hidden_size, rank, bias=False, device=device, dtype=torch.float32)
        nn.init.orthogonal_(rotation.weight)
        parametrize.register_parametrization(rotation, "weight", UnitDiagonal())
        # use_trivialization=False: R is a function of one stored (r, H) matrix, no (H, H) base buffer per layer
        self.rotation = orthogonal(rotation, orthogonal_map="householder", use_trivialization=False)
        with torch.no_grad():
            self.weight = nn.Parameter(self.rotation.weight.clone())  # W: (r, H)
        self.bias = nn.Parameter(torch.zeros(rank, device=device, dtype=torch.float32))  # b: (r,)

    @property
    def projection(self) -> torch.Tensor:
        """R: (r, H), orthonormal rows."""
        return self.rotation.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., H) -> (..., H), same dtype."""
        rotation = self.projection  # (r, H)
        hidden32 = hidden.float()
        low_rank = hidden32 @ (self.weight - rotation).T + self.bias  # (..., r) = W h + b − R h
        return (hidden32 + low_rank @ rotation).to(hidden.dtype)  # (..., H)
