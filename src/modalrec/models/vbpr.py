"""VBPR (He & McAuley, AAAI 2016): MF plus a visual/content term theta_u . E f_i.

Users are [gamma_u; theta_u], items [gamma_i; E f_i] with f_i the concatenation of all modality
features (as in MMRec). E is linear, so E f_i = sum_m E_m f_i^m and each modality is an exact
branch. Branches: fused = gamma_u.gamma_i + theta_u.E f_i (ranking); m = theta_u . E_m f_i^m.
The item-bias term beta'^T f_i of the paper is omitted, as in MMRec. Training projects only the
batch's distinct items; ``feature_precision`` (see models/features.py) runs that projection in
bfloat16 on CPUs with native support.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from modalrec.data.dataset import Dataset
from modalrec.models.base import (
    Batch,
    LazyItems,
    Params,
    Recommender,
    Representations,
    init_embedding,
    l2_rule,
)
from modalrec.models.features import FeatureProjector, Precision, precision_field
from modalrec.models.registry import register


class VBPRParams(Params):
    dim: int = Field(64, ge=1, description="size of gamma (ID) and of theta (content) halves")
    reg_weight: float = Field(1e-4, ge=0, description="L2 on the batch's ID embeddings (1/2 sum sq / B)")
    feature_precision: Precision = precision_field()


@register
class VBPR(Recommender):
    """VBPR. Branches: fused (ID + content), and one per modality (theta_u . E_m f_i^m)."""

    name = "vbpr"
    paper = "VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback (AAAI)"
    year = 2016
    Params = VBPRParams
    needs_features = True
    branch_doc = "fused: [gamma;theta].[gamma;E f]; <modality>: theta_u . E_m f_i^m"

    def __init__(self, ds: Dataset, params: VBPRParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        d = params.dim
        self.user_emb = init_embedding(ds.n_users, 2 * d)  # [gamma_u | theta_u]: no per-step concatenation
        self.gamma_i = init_embedding(ds.n_items, d)
        self.bank = FeatureProjector(ds, d, precision=params.feature_precision, device=device, bias=False)
        self.content_bias = nn.Parameter(torch.zeros(d))

    def branch_names(self, ds: Dataset) -> list[str]:
        return ["fused", *ds.features]

    def _content(self, idx: torch.Tensor | None) -> torch.Tensor:
        return sum(self.bank.project(m, idx) for m in self.bank.modalities) + self.content_bias

    def forward(self) -> Representations:
        users = {"fused": self.user_emb}
        theta_u = self.user_emb[:, self.p.dim :]
        fused = LazyItems(
            lambda idx: torch.cat([self.gamma_i if idx is None else self.gamma_i[idx], self._content(idx)], 1),
            self.n_items,
        )
        items: dict = {"fused": fused}
        for m in self.bank.modalities:
            users[m] = theta_u
            items[m] = self.bank.table(m)
        return Representations(users, items)

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor:
        e = (self.user_emb[batch.users], self.gamma_i[batch.pos], self.gamma_i[batch.neg])
        return self.p.reg_weight * l2_rule(*e)
