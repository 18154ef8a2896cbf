"""BR-MRS (Sec. 2.1): homogeneous graphs + per-modality LightGCN channels + a fused branch.

Read top-down like Sec. 2.1:
1. Item and user homogeneous graphs, Eq. 1: e_ij = alpha * Jaccard(N_i, N_j) + (1 - alpha) *
   sum_m beta_m cos(x_i^m, x_j^m), top-k, D^-1/2 A D^-1/2 (``graphs/homogeneous.py``). Items use
   their user sets and raw features; users use their item sets and interest vectors (the mean
   feature of their training items), both from ``ds.graph``.
2. One independent channel per modality m: item input = W_m x_i^m + e_i^m (a per-channel item ID
   embedding, ``item_id=false`` drops it), user input = a per-channel user ID embedding. Inputs are
   smoothed on the homogeneous graphs (mean over layers 0..L_h), then LightGCN on the user-item
   graph ``ds.graph`` with mean pooling over layers: p_u^m, q_i^m.
3. Fused branch q_f = phi(q^1, ..., q^M), same phi for users: ``concat`` (s_f = sum_m s_m),
   ``mean``, or ``gate`` (per-dimension softmax over modalities of a learned linear map of the
   concatenation; for M = 2 this is a sigmoid gate g * q_t + (1 - g) * q_v).
Features are z-scored per column and scaled to unit rows by default (``feature_norm``): raw
VGGish audio features (Last.fm) are quantised 0..255 with a large common offset, which makes every
cosine in Eq. 1 close to 1 and swamps the ID embeddings in the projections.
Branches: "fused" (ranking) and one per modality (named as in the dataset). Channels share no
parameters, so a modality's loss term never reaches another modality's parameters.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from modalrec.data.dataset import Dataset
from modalrec.graphs import SparseOp, bipartite_adjacency
from modalrec.graphs.homogeneous import homogeneous_graph, interest_vectors
from modalrec.models.base import Batch, Params, Recommender, Representations, init_embedding, l2_rule
from modalrec.models.lightgcn import propagate
from modalrec.models.registry import register


class BRMRSParams(Params):
    dim: int = Field(64, ge=1, description="embedding size of every modality channel")
    n_layers: int = Field(2, ge=0, description="LightGCN layers on the user-item graph")
    n_item_layers: int = Field(1, ge=0, description="propagation layers on the item homogeneous graph")
    n_user_layers: int = Field(1, ge=0, description="propagation layers on the user homogeneous graph")
    item_k: int = Field(10, ge=1, description="top-k neighbours per item in the item graph")
    user_k: int = Field(10, ge=1, description="top-k neighbours per user in the user graph")
    item_alpha: float = Field(0.2, ge=0, le=1, description="alpha of Eq. 1 for items (co-interaction share)")
    user_alpha: float = Field(0.4, ge=0, le=1, description="alpha of Eq. 1 for users (co-interaction share)")
    modality_weights: dict[str, float] | None = Field(None, description="beta_m of Eq. 1 (default: equal, sum 1)")
    fusion: Literal["concat", "mean", "gate"] = Field("concat", description="phi: concat, mean or a learned gate")
    item_id: bool = Field(True, description="add a per-channel item ID embedding to the projected features")
    feature_norm: Literal["zscore_l2", "l2", "none"] = Field(
        "zscore_l2", description="per-modality feature scaling before Eq. 1 and the projections (see module doc)"
    )
    reg_weight: float = Field(1e-4, ge=0, description="L2 on the batch's layer-0 ID embeddings (1/2 sum sq / B)")


def betas(modalities: list[str], given: dict[str, float] | None) -> dict[str, float]:
    if given is None:
        return {m: 1.0 / len(modalities) for m in modalities}
    return {m: float(given.get(m, 0.0)) for m in modalities}


def scale_features(x: np.ndarray, how: str) -> np.ndarray:
    """z-score columns then unit rows (``zscore_l2``), unit rows (``l2``) or raw (``none``)."""
    x = np.asarray(x, dtype=np.float32)
    if how == "zscore_l2":
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    if how in ("zscore_l2", "l2"):
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x.astype(np.float32)


def smooth(adj: SparseOp | None, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Mean over layers 0..L of homogeneous-graph convolution (identity when there is no graph)."""
    return x if adj is None or n_layers == 0 else propagate(adj, x, n_layers)


class Fusion(nn.Module):
    """phi(q^1..q^M) for one side (users or items)."""

    def __init__(self, kind: str, n_mod: int, dim: int):
        super().__init__()
        self.kind, self.n_mod, self.dim = kind, n_mod, dim
        if kind == "gate":
            self.gate = nn.Linear(n_mod * dim, n_mod * dim)
            nn.init.zeros_(self.gate.weight)  # start as the mean; the gate learns to move away from it
            nn.init.zeros_(self.gate.bias)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        if self.kind == "concat":
            return torch.cat(parts, dim=1)
        stacked = torch.stack(parts, dim=1)  # [N, M, d]
        if self.kind == "mean":
            return stacked.mean(1)
        w = torch.softmax(self.gate(torch.cat(parts, dim=1)).view(-1, self.n_mod, self.dim), dim=1)
        return (w * stacked).sum(1)


@register
class BRMRS(Recommender):
    """BR-MRS; see the module docstring."""

    name = "brmrs"
    paper = "BR-MRS: Synergy-Aware Multimodal Recommendation with Cross-Modal Hard Negatives (ICML submission)"
    year = 2026
    Params = BRMRSParams
    needs_features = True
    default_objective = "brmrs"  # used when the config does not name an objective
    branch_doc = "fused: phi(p^m) . phi(q^m); <modality>: its own LightGCN channel p_u^m . q_i^m"

    def __init__(self, ds: Dataset, params: BRMRSParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        d = params.dim
        self.modalities = list(ds.features)
        bm = betas(self.modalities, params.modality_weights)
        self.user_emb = nn.ParameterDict({m: init_embedding(ds.n_users, d) for m in self.modalities})
        self.item_emb = nn.ParameterDict(
            {m: init_embedding(ds.n_items, d) for m in self.modalities} if params.item_id else {}
        )
        feats = {m: scale_features(f, params.feature_norm) for m, f in ds.features.items()}
        for m, f in feats.items():
            self.register_buffer(f"feat_{m}", torch.from_numpy(f), persistent=False)
        self.proj = nn.ModuleDict({m: nn.Linear(f.shape[1], d) for m, f in feats.items()})
        for lin in self.proj.values():
            nn.init.xavier_normal_(lin.weight)
        g = ds.graph.tocsr()
        self.item_adj = self.user_adj = None
        if params.n_item_layers:  # Eq. 1 over items: neighbours = users, features = (scaled) item features
            ii = homogeneous_graph(g.T.tocsr(), feats, params.item_alpha, bm, params.item_k)
            self.item_adj = SparseOp(ii, device)
        if params.n_user_layers:  # Eq. 1 over users: neighbours = items, features = interest vectors
            interests = {m: interest_vectors(g, f) for m, f in feats.items()}
            self.user_adj = SparseOp(homogeneous_graph(g, interests, params.user_alpha, bm, params.user_k), device)
        self.adj = SparseOp(bipartite_adjacency(g), device, symmetric=True)
        n = len(self.modalities)
        self.fuse_users = Fusion(params.fusion, n, d)
        self.fuse_items = Fusion(params.fusion, n, d)

    def branch_names(self, ds: Dataset) -> list[str]:
        return ["fused", *ds.features]

    def channel(self, m: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One modality channel: homogeneous smoothing, then LightGCN with mean pooling (Sec. 2.1)."""
        items = self.proj[m](getattr(self, f"feat_{m}"))
        if self.p.item_id:
            items = items + self.item_emb[m]
        items = smooth(self.item_adj, items, self.p.n_item_layers)
        users = smooth(self.user_adj, self.user_emb[m], self.p.n_user_layers)
        out = propagate(self.adj, torch.cat([users, items]), self.p.n_layers)
        u, i = out.split([self.n_users, self.n_items])
        return u, i

    def forward(self) -> Representations:
        users, items = {}, {}
        for m in self.modalities:
            users[m], items[m] = self.channel(m)
        users["fused"] = self.fuse_users([users[m] for m in self.modalities])
        items["fused"] = self.fuse_items([items[m] for m in self.modalities])
        order = ["fused", *self.modalities]
        return Representations({b: users[b] for b in order}, {b: items[b] for b in order})

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor:
        e = [self.user_emb[m][batch.users] for m in self.modalities]
        for m in self.item_emb:
            e += [self.item_emb[m][batch.pos], self.item_emb[m][batch.neg]]
        return self.p.reg_weight * l2_rule(*e)
