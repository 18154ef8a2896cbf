"""LATTICE (Zhang et al., ACM MM 2021): mining latent item-item structure from multimodal features.

- Original graphs: per modality, cosine top-k over the raw features with similarity values, normalised
  D^-1/2 S D^-1/2 (row degrees); built once in row chunks and cached.
- Learned graph (structure learning): per modality, cosine top-k over the *projected* features W_m f_m;
  the modality graphs are mixed by softmax(modal_weight), normalised D^-1/2 S D^-1/2, and combined with the
  original graphs (mixed by the same weights): A = (1 - lambda) A_learned + lambda A_original.
- h = A^L e_id (``n_layers``); CF part: LightGCN (mean over layers) on the NGCF-style D^-1 (A + I) u-i graph of
  ``ds.graph`` (``cf_model=mf`` uses the raw ID embeddings); item = i_cf + normalize(h); user = u_cf.
- Loss: BPR + reg_weight * 1/2 sum sq / B on the batch's final embeddings.

Branches: fused (u_cf . (i_cf + normalize(A^L e_id)), ranking); <modality>: the same with the item graph of
that modality alone, (1 - lambda) norm(S_m) + lambda A_m^orig (what LATTICE would use with one modality).

Deviation (scale): the published code materialises dense I x I similarity, kNN and Laplacian matrices (out of
memory on Electronics). Here the learned graph is a sparse top-k graph: its neighbour indices are chosen once
per epoch in row chunks (top-k of the projected-feature cosine similarity, no dense I x I), and its edge values
are the cosine similarities gathered at those indices, so they stay differentiable w.r.t. the projections and
the modality weights. ``learned_grad``: ``first_step`` (default, as the released code) back-propagates through
the learned graph on the first step of each epoch and reuses the detached graph afterwards;
``every_step`` recomputes the gathered values (indices fixed for the epoch) with gradient on every step.
Fixes: no hard-coded CUDA; evaluation rebuilds the graph ONCE from the current projections (the released code
rebuilds it on every evaluation batch; the next epoch reuses that kNN search while the projections are
unchanged); raw features are frozen by default (``train_features=true`` fine-tunes
them as MMRec does).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from modalrec.data.dataset import Dataset
from modalrec.graphs import SparseOp, bipartite_adjacency, knn_adjacency, knn_graph
from modalrec.models.base import Batch, LazyItems, Params, Recommender, Representations, init_embedding, l2_rule
from modalrec.models.features import FeatureProjector, Precision, precision_field
from modalrec.models.lightgcn import propagate
from modalrec.models.mgcn import require_modalities
from modalrec.models.registry import register

Edges = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # rows, cols, values


class LATTICEParams(Params):
    dim: int = Field(64, ge=1, description="embedding size")
    feat_embed_dim: int = Field(64, ge=1, description="size of the projected features used for graph learning")
    knn_k: int = Field(10, ge=1, description="neighbours per item in the original and learned graphs")
    lambda_coeff: float = Field(0.9, ge=0, le=1, description="weight of the original graph (skip connection)")
    n_layers: int = Field(1, ge=0, description="propagation layers on the item-item graph")
    n_ui_layers: int = Field(2, ge=0, description="LightGCN layers of the CF part")
    cf_model: Literal["lightgcn", "mf"] = Field("lightgcn", description="CF backbone")
    reg_weight: float = Field(1e-4, ge=0, description="L2 on the batch's final embeddings (1/2 sum sq / B)")
    learned_grad: Literal["first_step", "every_step"] = Field(
        "first_step", description="gradient through the learned graph on the epoch's first step only, or every step"
    )
    train_features: bool = Field(False, description="fine-tune the raw feature tables (MMRec does)")
    feature_precision: Precision = precision_field()


def sym_normalize(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, n: int) -> torch.Tensor:
    """Values of D^-1/2 S D^-1/2 with D the row sums of S (differentiable in ``vals``)."""
    deg = torch.zeros(n, dtype=vals.dtype, device=vals.device).index_add(0, rows, vals)
    inv = deg.clamp_min(1e-12).pow(-0.5)
    return vals * inv[rows] * inv[cols]


def edge_spmm(edges: Edges, x: torch.Tensor) -> torch.Tensor:
    """sum over edges (r, c, v) of v * x[c] into row r; differentiable in both v and x."""
    rows, cols, vals = edges
    return torch.zeros_like(x).index_add(0, rows, vals.unsqueeze(1) * x[cols])


def to_op(edges: Edges, n: int, device: torch.device | str) -> SparseOp:
    """A constant SparseOp from (detached) edge lists; duplicate edges are summed."""
    r, c, v = (t.detach().cpu().numpy() for t in edges)
    m = sp.csr_matrix((v.astype(np.float32), (r, c)), shape=(n, n))
    m.sum_duplicates()
    return SparseOp(m, device, symmetric=False)


def cat_edges(parts: list[Edges]) -> Edges:
    return tuple(torch.cat([p[j] for p in parts]) for j in range(3))  # type: ignore[return-value]


@register
class LATTICE(Recommender):
    """LATTICE; see the module docstring for branches, the sparse learned graph, fixes and deviations."""

    name = "lattice"
    paper = "Mining Latent Structures for Multimedia Recommendation (MM)"
    year = 2021
    Params = LATTICEParams
    needs_features = True
    branch_doc = "fused: u_cf.(i_cf + norm(A h_id)); <modality>: the same on that modality's item graph alone"

    def __init__(self, ds: Dataset, params: LATTICEParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        self.modalities = require_modalities(ds, self.name, 1)
        d = params.dim
        self.user_emb = init_embedding(ds.n_users, d)
        self.item_emb = init_embedding(ds.n_items, d)
        self.feats = FeatureProjector(
            ds, params.feat_embed_dim, params.train_features, params.feature_precision, device
        )
        self.modal_weight = nn.Parameter(torch.full((len(self.modalities),), 1.0 / len(self.modalities)))
        self.adj = SparseOp(bipartite_adjacency(ds.graph, self_loops=True, norm="left"), device, symmetric=False)
        self.original: dict[str, Edges] = {}
        for m in self.modalities:
            g = knn_adjacency(ds.features[m], params.knn_k, weighted=True, norm="sym").tocoo()
            self.original[m] = (
                torch.from_numpy(g.row.astype(np.int64)).to(device),
                torch.from_numpy(g.col.astype(np.int64)).to(device),
                torch.from_numpy(g.data.astype(np.float32)).to(device),
            )
        self._knn: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._knn_key: tuple[int, ...] = ()
        self._new_epoch = True
        self._cached: dict[str, SparseOp] | None = None

    def branch_names(self, ds: Dataset) -> list[str]:
        return ["fused", *ds.features]

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Rebuild the learned graph (new kNN indices) on the epoch's first step."""
        self._new_epoch = True

    # -- graph learning --------------------------------------------------------------------
    def _select_neighbours(self, proj: dict[str, torch.Tensor]) -> None:
        """Top-k indices of the projected-feature cosine graph, in row chunks (no dense I x I)."""
        k = self.p.knn_k
        for m, x in proj.items():
            idx, _ = knn_graph(x.detach().cpu(), k)
            n, kk = idx.shape
            rows = torch.arange(n).repeat_interleave(kk)
            self._knn[m] = (rows.to(x.device), torch.from_numpy(idx.ravel()).to(x.device))

    def _graphs(self) -> dict[str, Edges]:
        """Edge lists of the fused item graph and of each modality's graph (values differentiable)."""
        lam, n = self.p.lambda_coeff, self.n_items
        proj = {m: F.normalize(self.feats(m), dim=1) for m in self.modalities}
        # re-pick neighbours at an epoch's first step and at evaluation, unless the projections are unchanged
        # since the last pick (e.g. the epoch right after an evaluation reuses that evaluation's kNN search)
        key = tuple(int(t._version) for t in self.feats.parameters())
        if not self._knn or ((self._new_epoch or not self.training) and key != self._knn_key):
            self._select_neighbours(proj)
            self._knn_key = key
        w = torch.softmax(self.modal_weight, dim=0)
        sims = {m: (proj[m][r] * proj[m][c]).sum(-1) for m, (r, c) in self._knn.items()}
        rows = torch.cat([self._knn[m][0] for m in self.modalities])
        cols = torch.cat([self._knn[m][1] for m in self.modalities])
        learned = sym_normalize(rows, cols, torch.cat([w[j] * sims[m] for j, m in enumerate(self.modalities)]), n)
        fused = [(rows, cols, (1 - lam) * learned)]
        out: dict[str, Edges] = {}
        for j, m in enumerate(self.modalities):
            r, c, v = self.original[m]
            fused.append((r, c, lam * w[j] * v))
            own = sym_normalize(*self._knn[m], sims[m], n)
            out[m] = cat_edges([(*self._knn[m], (1 - lam) * own), (r, c, lam * v)])
        out["fused"] = cat_edges(fused)
        return out

    def _propagate(self, graph: Edges | SparseOp) -> torch.Tensor:
        h = self.item_emb
        for _ in range(self.p.n_layers):
            h = graph @ h if isinstance(graph, SparseOp) else edge_spmm(graph, h)
        return F.normalize(h, dim=1)

    def forward(self) -> Representations:
        p = self.p
        graphs: dict[str, Edges | SparseOp]
        if not self.training:  # evaluation: rebuild once from the current projections, no gradient
            with torch.no_grad():
                graphs = dict(self._graphs())
        elif self._new_epoch or p.learned_grad == "every_step" or self._cached is None:
            edges = self._graphs()
            self._new_epoch = False
            if p.learned_grad == "first_step":  # later steps of the epoch reuse the detached graph
                self._cached = {b: to_op(e, self.n_items, self.item_emb.device) for b, e in edges.items()}
            graphs = dict(edges)
        else:
            graphs = dict(self._cached)
        if p.cf_model == "lightgcn":
            out = propagate(self.adj, torch.cat([self.user_emb, self.item_emb]), p.n_ui_layers)
            u, i_cf = out.split([self.n_users, self.n_items])
        else:
            u, i_cf = self.user_emb, self.item_emb
        users = {"fused": u}
        items: dict = {"fused": i_cf + self._propagate(graphs["fused"])}
        for m in self.modalities:
            users[m] = u
            items[m] = LazyItems(lambda idx, g=graphs[m]: self._branch(i_cf, g, idx), self.n_items)
        return Representations(users, items)

    def _branch(self, i_cf: torch.Tensor, graph: Edges | SparseOp, idx: torch.Tensor | None) -> torch.Tensor:
        t = i_cf + self._propagate(graph)
        return t if idx is None else t[idx]

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor:
        u = reps.user("fused", batch.users)
        pos, neg = reps.items_at("fused", batch.pos, batch.neg)
        return self.p.reg_weight * l2_rule(u, pos, neg)
