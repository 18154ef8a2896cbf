"""DRAGON (Zhou et al., ECAI 2023): dyadic relations via a heterogeneous u-i graph plus two homogeneous graphs.

- Heterogeneous graph: DualGNN's per-modality GCN (``ModalityGCN``: MLP feature -> 4d -> d, free
  user preference, x + A x + A^2 x on the sym-normalised u-i graph), "cat" construction:
  items = [i_m1 | i_m2 | ...], users = [w_u1 u_m1 | w_u2 u_m2 | ...] with a learnable per-user
  modality weight w_u (softmax-initialised).
- Item-item graph: FREEDOM-style frozen graph, per-modality binary cosine top-k (k = 10),
  D^-1/2 A D^-1/2, mixed 0.1 image / 0.9 text (``mm_image_weight``); items += G_ii^L items.
- User-user graph: top-k (k = 40) co-occurring users, softmax(count) weights; users += G_uu users.
- Loss: BPR (objective) + reg_weight * (sum_m mean(p_m[batch users]^2) + mean(w_u^2)).
- The u-i and user-user graphs both derive from ``ds.graph`` (the propagation graph, which
  edge-editing studies may change), never from the supervision edges.

Branches: fused (ranking) = the concatenation; <modality> = that modality's block of the
concatenation (w_um u_m refined by G_uu, i_m refined by G_ii), so the fused score is exactly the
sum of the modality scores.

Differences from the community implementation (behaviour changes): graphs are built once and
cached by content hash (sparse co-occurrence, no O(U^2) loop, no per-epoch random padding of
short neighbour lists); the item graph honours ``mm_image_weight`` in its cache key; the dead
modality-drop code, the unused trainable raw-feature tables and ``MLP_user`` are gone;
evaluation is one eval-mode forward (no cached train-mode ``result_embed``). The toolbox's
log2-BPR + reg equals BPR + ln(2) * reg under Adam (scale-invariant), which ``reg_loss`` returns.
"""

from __future__ import annotations

import torch
from pydantic import Field

from modalrec.data.dataset import Dataset
from modalrec.graphs import SparseOp
from modalrec.models.base import Batch, Params, Recommender, Representations
from modalrec.models.dualgnn import dual_reg_loss, init_dual_graphs
from modalrec.models.freedom import mixed_knn_graph, modality_weights
from modalrec.models.registry import register


class DRAGONParams(Params):
    dim: int = Field(64, ge=1, description="embedding size of every modality block")
    n_layers: int = Field(2, ge=0, description="propagation layers on the u-i graph (summed with layer 0)")
    n_mm_layers: int = Field(1, ge=0, description="layers on the frozen item-item graph")
    knn_k: int = Field(10, ge=1, description="neighbours per item in the modality graph")
    mm_image_weight: float = Field(0.1, ge=0, le=1, description="weight of the image graph (others share the rest)")
    user_k: int = Field(40, ge=1, description="neighbours per user in the co-occurrence graph")
    reg_weight: float = Field(1e-3, ge=0, description="L2 on batch preferences and the user modality weights")


@register
class DRAGON(Recommender):
    """DRAGON; see the module docstring for branches and deviations."""

    name = "dragon"
    paper = "Enhancing Dyadic Relations with Homogeneous Graphs for Multimodal Recommendation (ECAI)"
    year = 2023
    Params = DRAGONParams
    needs_features = True
    dataset_defaults = {"baby": {"reg_weight": 1e-3}, "sports": {"reg_weight": 1e-3}, "clothing": {"reg_weight": 0.1}}
    branch_doc = "fused: [w_um u_m]_m(+G_uu) . [i_m]_m(+G_ii); <modality>: block m of both (fused = sum of blocks)"

    def __init__(self, ds: Dataset, params: DRAGONParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        init_dual_graphs(self, ds, params.dim, params.n_layers, params.user_k, device)
        weights = modality_weights(self.modalities, params.mm_image_weight)
        self.item_graph = SparseOp(mixed_knn_graph(ds, params.knn_k, weights), device)

    def branch_names(self, ds: Dataset) -> list[str]:
        return ["fused", *ds.features]

    def forward(self) -> Representations:
        outs = [self.gcn[m](self.adj, getattr(self, f"feat_{m}")) for m in self.modalities]
        w = self.weight_u.squeeze(2)
        users = torch.cat([o[: self.n_users] * w[:, j : j + 1] for j, o in enumerate(outs)], dim=1)  # 'cat'
        items = torch.cat([o[self.n_users :] for o in outs], dim=1)
        h = items
        for _ in range(self.p.n_mm_layers):
            h = self.item_graph @ h
        items = items + h
        users = users + self.user_graph @ users
        d = self.p.dim
        u_rep, i_rep = {"fused": users}, {"fused": items}
        for j, m in enumerate(self.modalities):
            u_rep[m] = users[:, j * d : (j + 1) * d]
            i_rep[m] = items[:, j * d : (j + 1) * d]
        return Representations(u_rep, i_rep)

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor:
        return dual_reg_loss(self, batch)
