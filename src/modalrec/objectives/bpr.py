"""The BPR loss on one branch: mean of -log sigma(s(u, i+) - s(u, i-))."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modalrec.models.base import Batch, Representations


def bpr_term(reps: Representations, batch: Batch, branch: str = "fused") -> torch.Tensor:
    u = reps.user(branch, batch.users)
    p, n = reps.items_at(branch, batch.pos, batch.neg)
    return F.softplus((u * n).sum(-1) - (u * p).sum(-1)).mean()
