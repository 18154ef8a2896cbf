"""Synergy-aware BPR (BR-MRS Eq. 3-4): the fused margin must exceed the best modality's by theta."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modalrec.models.base import Representations


def margins(
    reps: Representations, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, branches: list[str]
) -> dict[str, torch.Tensor]:
    """Delta_b = s_b(u, i+) - s_b(u, i-) for each branch (Eq. 3): {branch: [B]}."""
    out = {}
    for b in branches:
        u = reps.user(b, users)
        p, n = reps.items_at(b, pos, neg)
        out[b] = (u * p).sum(-1) - (u * n).sum(-1)
    return out


def synergy_loss(delta_fused: torch.Tensor, delta_modalities: list[torch.Tensor], margin: float) -> torch.Tensor:
    """Mean of -log sigma(Delta_f - max_m Delta_m - theta) (Eq. 4)."""
    best = torch.stack(delta_modalities).max(0).values
    return F.softplus(-(delta_fused - best - margin)).mean()


def synergy_term(
    reps: Representations,
    users: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    modalities: list[str],
    margin: float,
) -> torch.Tensor:
    """L_syn for one uniformly sampled negative per positive."""
    d = margins(reps, users, pos, neg, ["fused", *modalities])
    return synergy_loss(d["fused"], [d[m] for m in modalities], margin)
