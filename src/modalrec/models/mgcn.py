"""MGCN (Yu et al., ACM MM 2023): multi-view GCN with a behaviour-guided purifier and a behaviour-aware fuser.

- Behaviour-guided purifier: per modality, x_m = e_id (.) sigma(W_2 (W_1 f_m + b_1) + b_2), the item-ID embedding gated
  by the projected raw features.
- Views: the u-i view is LightGCN (mean over layers 0..L) on D^-1/2 A D^-1/2 of ``ds.graph``; each
  item-item view runs ``n_layers`` steps on the modality's cosine top-k graph (similarity values kept,
  sym-normalised with row degrees, built once in row chunks and cached) and gets users as R_norm @ items.
- Behaviour-aware fuser: attention ``softmax(q^T tanh(W e + b))`` over the modality views gives the common part;
  each modality's specific part (view - common) is gated by sigma(W content + b); side = mean of the specific
  parts and the common part; output = content + side.
- Loss: BPR + reg_weight * 1/2 sum sq / B on the batch's final embeddings + cl_loss * [InfoNCE(side,
  content) for the batch's positive items and users, temperature ``cl_temp``].

Branches: fused (content + side, ranking); <modality>: the purified item-item view of that modality with users
from R_norm (the representation MGCN's fuser consumes for it). The paper has two modalities; with M modalities
side = (sum_m specific_m + common) / (M + 1), which is the paper's formula for M = 2.
Fixes and deviations: runs on any device (no hard-coded CUDA); one forward per evaluation; raw features are
frozen by default (MMRec fine-tunes the 4096-d table; ``train_features=true`` restores that).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from modalrec.data.dataset import Dataset
from modalrec.errors import DataError
from modalrec.graphs import SparseOp, bipartite_adjacency, knn_adjacency, normalized_rating
from modalrec.models.base import Batch, LazyItems, Params, Recommender, Representations, init_embedding, l2_rule
from modalrec.models.contrastive import info_nce
from modalrec.models.features import FeatureProjector, Precision, precision_field
from modalrec.models.lightgcn import propagate
from modalrec.models.registry import register


def require_modalities(ds: Dataset, model: str, at_least: int) -> list[str]:
    """The dataset's modality names, or a DataError when there are fewer than ``at_least``."""
    mods = list(ds.features)
    if len(mods) < at_least:
        raise DataError(
            f"model {model!r} needs at least {at_least} feature modalities but dataset {ds.name!r} has "
            f"{len(mods)} ({', '.join(mods) or 'none'}); add feature files via data.features"
        )
    return mods


def gate(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.Sigmoid())


def gate_bank(dim: int, n: int) -> nn.Sequential:
    """``n`` independent sigmoid(Linear(x)) gates on the same input, as one [dim -> n * dim] product."""
    return nn.Sequential(nn.Linear(dim, n * dim), nn.Sigmoid())


class MGCNParams(Params):
    dim: int = Field(64, ge=1, description="embedding size")
    n_ui_layers: int = Field(2, ge=0, description="LightGCN layers of the u-i view")
    n_layers: int = Field(1, ge=0, description="layers on each modality item-item graph")
    knn_k: int = Field(10, ge=1, description="neighbours per item in the modality graphs")
    cl_loss: float = Field(0.01, ge=0, description="weight of the side/content InfoNCE terms")
    cl_temp: float = Field(0.2, gt=0, description="InfoNCE temperature")
    reg_weight: float = Field(1e-4, ge=0, description="L2 on the batch's final embeddings (1/2 sum sq / B)")
    train_features: bool = Field(False, description="fine-tune the raw feature tables (MMRec does)")
    feature_precision: Precision = precision_field()


class ModalityViews(nn.Module):
    """Shared MGCN/SMORE machinery: u-i adjacency, R_norm, per-modality kNN graphs and item-item views."""

    def __init__(self, ds: Dataset, ks: dict[str, int], device: torch.device | str):
        super().__init__()
        self.n_users, self.n_items = ds.n_users, ds.n_items
        self.adj = SparseOp(bipartite_adjacency(ds.graph), device, symmetric=True)
        self.r_norm = SparseOp(normalized_rating(ds.graph), device)
        self.graphs_sp = {m: knn_adjacency(ds.features[m], k, weighted=True, norm="sym") for m, k in ks.items()}
        self.graphs = {m: SparseOp(g, device) for m, g in self.graphs_sp.items()}

    def content(self, user_emb: torch.Tensor, item_emb: torch.Tensor, n_layers: int) -> torch.Tensor:
        """The u-i (behaviour) view: LightGCN mean over layers, [U + I, d]."""
        return propagate(self.adj, torch.cat([user_emb, item_emb]), n_layers)

    def item_view(self, graph: SparseOp, x: torch.Tensor, n_layers: int) -> torch.Tensor:
        """Propagate item rows on an item-item graph, then users = R_norm @ items; returns [U + I, d]."""
        for _ in range(n_layers):
            x = graph @ x
        return torch.cat([self.r_norm @ x, x])


@register
class MGCN(Recommender):
    """MGCN; see the module docstring for branches, fixes and deviations."""

    name = "mgcn"
    paper = "Multi-View Graph Convolutional Network for Multimedia Recommendation (MM)"
    year = 2023
    Params = MGCNParams
    needs_features = True
    branch_doc = "fused: content + side; <modality>: purified item-item view (users = R_norm @ items)"

    def __init__(self, ds: Dataset, params: MGCNParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        self.modalities = require_modalities(ds, self.name, 1)
        d = params.dim
        self.user_emb = init_embedding(ds.n_users, d)
        self.item_emb = init_embedding(ds.n_items, d)
        self.views = ModalityViews(ds, {m: params.knn_k for m in self.modalities}, device)
        self.feats = FeatureProjector(ds, d, params.train_features, params.feature_precision, device)
        self.purify = nn.ModuleDict({m: gate(d) for m in self.modalities})
        self.query_common = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1, bias=False))
        self.prefer = gate_bank(d, len(self.modalities))  # one sigmoid(Linear(content)) gate per modality

    def branch_names(self, ds: Dataset) -> list[str]:
        return ["fused", *ds.features]

    def forward(self) -> Representations:
        p = self.p
        content = self.views.content(self.user_emb, self.item_emb, p.n_ui_layers)  # u-i view
        views = []
        for m in self.modalities:
            x = self.item_emb * self.purify[m](self.feats(m))  # purifier
            views.append(self.views.item_view(self.views.graphs[m], x, p.n_layers))  # item-item view
        nu = self.n_users

        def side(rows: torch.Tensor | None) -> torch.Tensor:  # the fuser is row-wise: batch rows only
            return self.fuse(
                content if rows is None else content[rows], [v if rows is None else v[rows] for v in views]
            )

        def fused(offset: int, n: int) -> LazyItems:
            def rows_of(idx: torch.Tensor | None) -> torch.Tensor:
                rows = torch.arange(offset, offset + n, device=content.device) if idx is None else idx + offset
                return content[rows] + side(rows)

            return LazyItems(rows_of, n)

        users: dict = {"fused": fused(0, nu)}
        items: dict = {"fused": fused(nu, self.n_items)}
        for m, v in zip(self.modalities, views):
            users[m], items[m] = v[:nu], v[nu:]
        return Representations(users, items, {"side": side, "content": content})

    def fuse(self, content: torch.Tensor, views: list[torch.Tensor]) -> torch.Tensor:
        """Behaviour-aware fuser on aligned rows: the side representation (common + gated specifics)."""
        stacked = torch.stack(views, dim=1)  # [N, M, d]
        att = torch.softmax(self.query_common(stacked).squeeze(-1), dim=1)  # common
        common = (att.unsqueeze(-1) * stacked).sum(1)
        prefer = self.prefer(content).view(-1, len(views), stacked.shape[-1])
        specific = (prefer * (stacked - common.unsqueeze(1))).sum(1)  # gated modality-specific parts
        return (specific + common) / (len(views) + 1)

    def aux_losses(self, reps: Representations, batch: Batch) -> dict[str, torch.Tensor]:
        if self.p.cl_loss == 0 or "side" not in reps.extras:
            return {}
        side, content, nu = reps.extras["side"], reps.extras["content"], self.n_users
        t, items = self.p.cl_temp, nu + batch.pos
        prec = self.feats.precision
        cl = info_nce(side(items), content[items], t, prec) + info_nce(side(batch.users), content[batch.users], t, prec)
        return {"mgcn_cl": self.p.cl_loss * cl}

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor:
        u = reps.user("fused", batch.users)
        pos, neg = reps.items_at("fused", batch.pos, batch.neg)
        return self.p.reg_weight * l2_rule(u, pos, neg)
