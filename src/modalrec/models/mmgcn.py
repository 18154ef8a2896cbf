"""MMGCN (Wei et al., ACM MM 2019): one GCN per modality on the user-item graph, outputs averaged.

Per modality m (equation numbers as the authors' code cites them):
- input x = normalize([p_m; f_m]) with a free user preference p_m; features wider than
  ``max_raw_dim`` first go through a Linear to ``latent_dim`` (the toolbox: image 4096 -> 256,
  text 384 raw);
- each of ``n_layers`` layers: h = leaky(mean_{j in N(i)} W x_j) (eq. 1, mean aggregation over
  the bidirectional graph), x_hat = leaky(W' x) + e_id (eq. 5, a shared ID embedding), and
  combination x = leaky(W'' h + x_hat) ("add") or leaky(W'' [h; x_hat]) ("concat");
- the representation is the mean over modalities of the last layer.
Loss: BPR (objective) + reg_weight * (mean(e_id[u]^2 + e_id[i]^2) over (u, i+), (u, i-) pairs +
sum_m mean(p_m^2)).

Branches: fused = the modality mean (ranking); <modality> = that modality's GCN output (users and
items), i.e. the per-modality graph whose average MMGCN ranks with.

Fixed community defects (behaviour changes): the ID embedding and the preferences are trainable
``nn.Parameter``s (the toolbox leaves them as random constants); ``n_layers`` is honoured (the
toolbox hard-codes 3); ``combine`` is a real switch (the toolbox's ``'False'`` string always took
"concat"; the default here is "add", the setting the toolbox meant); the preference L2 covers
every modality (the toolbox only image); evaluation is one eval-mode forward, not the cached
train-mode result.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from modalrec.data.dataset import Dataset
from modalrec.graphs import SparseOp, bipartite_adjacency
from modalrec.models.base import Batch, Params, Recommender, Representations
from modalrec.models.dualgnn import require_features, xavier
from modalrec.models.registry import register


class MMGCNParams(Params):
    dim: int = Field(64, ge=1, description="ID embedding / output size")
    n_layers: int = Field(2, ge=1, description="graph convolution layers per modality")
    latent_dim: int = Field(256, ge=1, description="size wide features are projected to before the GCN")
    max_raw_dim: int = Field(512, ge=1, description="features wider than this are projected to latent_dim")
    combine: Literal["add", "concat"] = Field("add", description="combination layer: W h + x_hat, or W [h; x_hat]")
    reg_weight: float = Field(1e-4, ge=0, description="L2 on batch ID embeddings and the preferences")


def _linear(d_in: int, d_out: int) -> nn.Linear:
    lin = nn.Linear(d_in, d_out)
    nn.init.xavier_normal_(lin.weight)
    return lin


class MMGCNLayer(nn.Module):
    """Aggregation (eq. 1), ID-augmented transform (eq. 5) and combination of one layer."""

    def __init__(self, d_in: int, dim: int, combine: str):
        super().__init__()
        self.conv = xavier(d_in, d_in)
        self.linear = _linear(d_in, dim)
        self.combine = combine
        self.g = _linear(d_in + dim, dim) if combine == "concat" else _linear(d_in, dim)

    def forward(self, adj: SparseOp, x: torch.Tensor, id_emb: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(adj @ (x @ self.conv))
        x_hat = F.leaky_relu(self.linear(x)) + id_emb
        if self.combine == "concat":
            return F.leaky_relu(self.g(torch.cat([h, x_hat], dim=1)))
        return F.leaky_relu(self.g(h) + x_hat)


class MMGCNModality(nn.Module):
    """One modality's GCN: preference + (projected) features through ``n_layers`` layers."""

    def __init__(self, n_users: int, feat_dim: int, p: MMGCNParams):
        super().__init__()
        self.proj = _linear(feat_dim, p.latent_dim) if feat_dim > p.max_raw_dim else None
        d0 = p.latent_dim if self.proj is not None else feat_dim
        self.preference = xavier(n_users, d0)
        dims = [d0] + [p.dim] * (p.n_layers - 1)
        self.layers = nn.ModuleList([MMGCNLayer(d, p.dim, p.combine) for d in dims])

    def forward(self, adj: SparseOp, feat: torch.Tensor, id_emb: torch.Tensor) -> torch.Tensor:
        t = self.proj(feat) if self.proj is not None else feat
        x = F.normalize(torch.cat([self.preference, t]), dim=1)
        for layer in self.layers:
            x = layer(adj, x, id_emb)
        return x


@register
class MMGCN(Recommender):
    """MMGCN; see the module docstring for branches and fixed defects."""

    name = "mmgcn"
    paper = "MMGCN: Multi-modal Graph Convolution Network for Personalized Recommendation of Micro-video (MM)"
    year = 2019
    Params = MMGCNParams
    needs_features = True
    branch_doc = "fused: mean_m GCN_m(u) . mean_m GCN_m(i); <modality>: GCN_m(u) . GCN_m(i)"

    def __init__(self, ds: Dataset, params: MMGCNParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        require_features(ds, self.name)
        self.modalities = list(ds.features)
        for m, f in ds.features.items():
            self.register_buffer(f"feat_{m}", torch.from_numpy(f), persistent=False)
        self.gcn = nn.ModuleDict({m: MMGCNModality(ds.n_users, f.shape[1], params) for m, f in ds.features.items()})
        self.id_embedding = xavier(ds.n_users + ds.n_items, params.dim)
        self.adj = SparseOp(bipartite_adjacency(ds.graph, norm="left"), device, symmetric=False)  # mean aggregation

    def branch_names(self, ds: Dataset) -> list[str]:
        return ["fused", *ds.features]

    def forward(self) -> Representations:
        outs = {m: self.gcn[m](self.adj, getattr(self, f"feat_{m}"), self.id_embedding) for m in self.modalities}
        fused = sum(outs.values()) / len(outs)
        users = {"fused": fused[: self.n_users]}
        items = {"fused": fused[self.n_users :]}
        for m, o in outs.items():
            users[m], items[m] = o[: self.n_users], o[self.n_users :]
        return Representations(users, items)

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor:
        e = self.id_embedding
        eu, ep, en = e[batch.users], e[self.n_users + batch.pos], e[self.n_users + batch.neg]
        ids = 0.5 * ((eu.pow(2) + ep.pow(2)).mean() + (eu.pow(2) + en.pow(2)).mean())
        pref = sum(self.gcn[m].preference.pow(2).mean() for m in self.modalities)
        return self.p.reg_weight * (ids + pref)
