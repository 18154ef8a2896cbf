"""BPR-MF (Rendle et al., UAI 2009): user and item ID embeddings scored by dot product."""

from __future__ import annotations

import torch
from pydantic import Field

from modalrec.data.dataset import Dataset
from modalrec.models.base import Batch, Params, Recommender, Representations, init_embedding, l2_rule
from modalrec.models.registry import register


class BPRParams(Params):
    dim: int = Field(64, ge=1, description="embedding size")
    reg_weight: float = Field(1e-4, ge=0, description="L2 on the batch embeddings (1/2 sum sq / B)")


@register
class BPRMF(Recommender):
    """Matrix factorisation trained with BPR. Branches: fused only (no modalities)."""

    name = "bpr"
    paper = "BPR: Bayesian Personalized Ranking from Implicit Feedback (UAI)"
    year = 2009
    Params = BPRParams

    def __init__(self, ds: Dataset, params: BPRParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        self.user_emb = init_embedding(ds.n_users, params.dim)
        self.item_emb = init_embedding(ds.n_items, params.dim)

    def forward(self) -> Representations:
        return Representations({"fused": self.user_emb}, {"fused": self.item_emb})

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor:
        e = (self.user_emb[batch.users], self.item_emb[batch.pos], self.item_emb[batch.neg])
        return self.p.reg_weight * l2_rule(*e)
