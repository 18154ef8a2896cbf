"""LightGCN (He et al., SIGIR 2020): linear propagation on the normalised user-item graph.

E^(l+1) = D^-1/2 A D^-1/2 E^(l); the representation is the mean of layers 0..L. Propagation uses
``Dataset.graph`` (which may differ from the supervision edges in edge-editing studies).
"""

from __future__ import annotations

import torch
from pydantic import Field

from modalrec.data.dataset import Dataset
from modalrec.graphs import SparseOp, bipartite_adjacency
from modalrec.models.base import Batch, Params, Recommender, Representations, init_embedding, l2_rule
from modalrec.models.registry import register


def propagate(adj: SparseOp, ego: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Mean over layers 0..L of repeated sparse propagation."""
    acc = ego
    x = ego
    for _ in range(n_layers):
        x = adj @ x
        acc = acc + x
    return acc / (n_layers + 1)


class LightGCNParams(Params):
    dim: int = Field(64, ge=1, description="embedding size")
    n_layers: int = Field(3, ge=0, description="propagation layers")
    reg_weight: float = Field(1e-4, ge=0, description="L2 on the batch's layer-0 embeddings (1/2 sum sq / B)")


@register
class LightGCN(Recommender):
    """LightGCN. Branches: fused only (no modalities)."""

    name = "lightgcn"
    paper = "LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation (SIGIR)"
    year = 2020
    Params = LightGCNParams

    def __init__(self, ds: Dataset, params: LightGCNParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        self.user_emb = init_embedding(ds.n_users, params.dim)
        self.item_emb = init_embedding(ds.n_items, params.dim)
        self.adj = SparseOp(bipartite_adjacency(ds.graph), device, symmetric=True)

    def forward(self) -> Representations:
        ego = torch.cat([self.user_emb, self.item_emb])
        out = propagate(self.adj, ego, self.p.n_layers)
        u, i = out.split([self.n_users, self.n_items])
        return Representations({"fused": u}, {"fused": i})

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor:
        e = (self.user_emb[batch.users], self.item_emb[batch.pos], self.item_emb[batch.neg])
        return self.p.reg_weight * l2_rule(*e)
