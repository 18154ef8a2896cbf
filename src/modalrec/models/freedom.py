"""FREEDOM (Zhou & Shen, ACM MM 2023): a frozen modality item-item graph plus a denoised u-i graph.

- Item-item graph: per modality, binary cosine top-k over the raw features, D^-1/2 A D^-1/2,
  mixed by modality weights (image 0.1 / text 0.9 by default); built once in row chunks and
  cached by content hash (never a dense I x I matrix).
- Every epoch the u-i graph keeps (1 - dropout)|E| edges sampled without replacement with
  probability ~ 1/sqrt(d_u d_i) (degree-sensitive pruning); evaluation uses the full graph.
- h = mm_adj^L_mm . item_id; LightGCN (mean over layers) on the u-i graph; item = cf + h.
- Loss: BPR on fused + reg_weight * sum_m BPR(u_cf, W_m f_pos, W_m f_neg).

Branches: fused (u_cf . (i_cf + h)); <modality>: u_cf . W_m f_i^m (the projections of FREEDOM's
modality BPR terms). Deviation: raw features are kept frozen by default (MMRec fine-tunes the
4096-d table, tripling its memory with Adam state); ``train_features=true`` restores that.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from modalrec.data.dataset import Dataset
from modalrec.graphs import SparseOp, bipartite_adjacency, knn_adjacency
from modalrec.models.base import Batch, LazyItems, Params, Recommender, Representations, init_embedding
from modalrec.models.lightgcn import propagate
from modalrec.models.registry import register


class FREEDOMParams(Params):
    dim: int = Field(64, ge=1, description="embedding size")
    n_ui_layers: int = Field(2, ge=0, description="LightGCN layers on the u-i graph")
    n_mm_layers: int = Field(1, ge=0, description="layers on the frozen item-item graph")
    knn_k: int = Field(10, ge=1, description="neighbours per item in the modality graph")
    image_weight: float = Field(0.1, ge=0, le=1, description="weight of the image graph (text gets the rest)")
    dropout: float = Field(0.8, ge=0, lt=1, description="share of u-i edges dropped each epoch")
    reg_weight: float = Field(1e-4, ge=0, description="weight of the modality BPR terms")
    train_features: bool = Field(False, description="fine-tune the raw feature tables (MMRec does)")


def modality_weights(modalities: list[str], image_weight: float) -> dict[str, float]:
    """Image gets ``image_weight`` and the others share the rest; without image, equal weights."""
    if "image" in modalities and len(modalities) > 1:
        rest = (1 - image_weight) / (len(modalities) - 1)
        return {m: image_weight if m == "image" else rest for m in modalities}
    return {m: 1.0 / len(modalities) for m in modalities}


def mixed_knn_graph(ds: Dataset, k: int, weights: dict[str, float]) -> sp.csr_matrix:
    """Weighted sum of per-modality binary kNN graphs (each sym-normalised)."""
    return sum(w * knn_adjacency(ds.features[m], k) for m, w in weights.items()).tocsr()


@register
class FREEDOM(Recommender):
    """FREEDOM; see the module docstring for branches and deviations."""

    name = "freedom"
    paper = "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal Recommendation (MM)"
    year = 2023
    Params = FREEDOMParams
    needs_features = True
    branch_doc = "fused: u_cf.(i_cf + h_mm); <modality>: u_cf . W_m f_i^m"

    def __init__(self, ds: Dataset, params: FREEDOMParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        d = params.dim
        self.user_emb = init_embedding(ds.n_users, d)
        self.item_emb = init_embedding(ds.n_items, d)
        self.modalities = list(ds.features)
        weights = modality_weights(self.modalities, params.image_weight)
        self.mm_adj = SparseOp(mixed_knn_graph(ds, params.knn_k, weights), device)
        for m, f in ds.features.items():
            t = torch.from_numpy(f)
            if params.train_features:
                self.register_parameter(f"feat_{m}", nn.Parameter(t.clone()))
            else:
                self.register_buffer(f"feat_{m}", t, persistent=False)
        self.proj = nn.ModuleDict({m: nn.Linear(f.shape[1], d) for m, f in ds.features.items()})
        for lin in self.proj.values():
            nn.init.xavier_normal_(lin.weight)
        g = ds.graph.tocoo()
        self._edges = (g.row.astype(np.int64), g.col.astype(np.int64))
        du = np.asarray(ds.graph.sum(1)).ravel()[g.row]
        di = np.asarray(ds.graph.sum(0)).ravel()[g.col]
        self._edge_logw = -0.5 * np.log(np.maximum(du * di, 1e-12))
        self.full_adj = SparseOp(bipartite_adjacency(ds.graph), device, symmetric=True)
        self.train_adj = self.full_adj
        self._shape = ds.graph.shape

    def branch_names(self, ds: Dataset) -> list[str]:
        return ["fused", *ds.features]

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Degree-sensitive edge pruning: Gumbel top-k = sampling without replacement ~ weights."""
        n = len(self._edge_logw)
        keep = int(n * (1.0 - self.p.dropout))
        if keep >= n or keep == 0:
            self.train_adj = self.full_adj
            return
        keys = self._edge_logw - np.log(-np.log(rng.random(n).clip(1e-12, 1 - 1e-12)))
        sel = np.argpartition(-keys, keep - 1)[:keep]
        r, c = self._edges[0][sel], self._edges[1][sel]
        kept = sp.csr_matrix((np.ones(keep, np.float32), (r, c)), shape=self._shape)
        self.train_adj = SparseOp(bipartite_adjacency(kept), self.device_, symmetric=True)

    def _project(self, m: str, idx: torch.Tensor | None) -> torch.Tensor:
        f = getattr(self, f"feat_{m}")
        return self.proj[m](f if idx is None else f[idx])

    def forward(self) -> Representations:
        adj = self.train_adj if self.training else self.full_adj
        h = self.item_emb
        for _ in range(self.p.n_mm_layers):
            h = self.mm_adj @ h
        out = propagate(adj, torch.cat([self.user_emb, self.item_emb]), self.p.n_ui_layers)
        u, i = out.split([self.n_users, self.n_items])
        users = {"fused": u}
        items: dict = {"fused": i + h}
        for m in self.modalities:
            users[m] = u
            items[m] = LazyItems(lambda idx, m=m: self._project(m, idx), self.n_items)
        return Representations(users, items)

    def aux_losses(self, reps: Representations, batch: Batch) -> dict[str, torch.Tensor]:
        if self.p.reg_weight == 0:
            return {}
        out = {}
        for m in self.modalities:
            u = reps.user(m, batch.users)
            p, n = reps.items_at(m, batch.pos, batch.neg)
            out[f"freedom_{m}_bpr"] = self.p.reg_weight * F.softplus(-((u * p).sum(-1) - (u * n).sum(-1))).mean()
        return out
