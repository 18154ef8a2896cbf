"""DualGNN (Wang et al., IEEE TMM 2021): per-modality GCNs on the u-i graph plus a user co-occurrence graph.

- Per modality m: item input t_m = W2 leaky(W1 f_m) (feature dim -> 4d -> d), user input a free
  preference p_m; x_m = normalize([p_m; t_m]); x_hat_m = x_m + A x_m + A^2 x_m with
  A = D^-1/2 A D^-1/2 the bidirectional u-i graph (``aggr_mode='add'``; ``n_layers`` terms).
- Fusion: items = sum_m x_hat_m[items]; users s = sum_m w_um x_hat_m[users] with a learnable
  per-user modality weight w_u (softmax-initialised, "weighted_sum" construction).
- User co-occurrence graph: top-k (k = 40) co-interacting users with softmax(count)
  weights; users = s + G_uu s.
- Loss: BPR (objective) + reg_weight * (sum_m mean(p_m[batch users]^2) + mean(w_u^2)).
- The u-i and user-user graphs both derive from ``ds.graph`` (the propagation graph, which
  edge-editing studies may change), never from the supervision edges.

Branches: fused (ranking); <modality>: the modality GCN's own user/item vectors
(x_hat_m[users], x_hat_m[items]) before fusion and the user-user step, i.e. what that modality's
channel alone predicts.

Differences from the community implementation (behaviour changes): the user-user graph is built
once, sparsely (graphs/cooccurrence.py), without the per-epoch random padding of short
neighbour lists; the dead modality-drop edge lists, the unused ``weight_i``/``MLP_user`` and
the cached train-mode ``result_embed`` are gone (evaluation = one eval-mode forward). The toolbox
minimises log2-BPR + reg; under Adam (invariant to the loss scale) that equals natural-log BPR +
ln(2) * reg, which is what ``reg_loss`` returns.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from modalrec.data.dataset import Dataset
from modalrec.errors import DataError
from modalrec.graphs import SparseOp, bipartite_adjacency
from modalrec.graphs.cooccurrence import user_cooccurrence_graph
from modalrec.models.base import Batch, Params, Recommender, Representations
from modalrec.models.registry import register

LN2 = math.log(2.0)


def require_features(ds: Dataset, model: str) -> None:
    """Raise a clear DataError when a multimodal model gets a dataset without features."""
    if not ds.features:
        raise DataError(
            f"model {model!r} needs item features but dataset {ds.name!r} has none; "
            f"add .npy files (data.features) or choose bpr/lightgcn"
        )


def xavier(*shape: int) -> nn.Parameter:
    w = torch.empty(*shape)
    nn.init.xavier_normal_(w)
    return nn.Parameter(w)


class ModalityGCN(nn.Module):
    """One modality's heterogeneous GCN (DualGNN / DRAGON ``GCN``): x + A x + ... + A^L x."""

    def __init__(self, n_users: int, feat_dim: int, dim: int, n_layers: int):
        super().__init__()
        self.preference = xavier(n_users, dim)
        self.mlp = nn.Linear(feat_dim, 4 * dim)
        self.mlp_1 = nn.Linear(4 * dim, dim)
        self.n_layers = n_layers

    def forward(self, adj: SparseOp, feat: torch.Tensor) -> torch.Tensor:
        t = self.mlp_1(F.leaky_relu(self.mlp(feat)))
        x = F.normalize(torch.cat([self.preference, t]), dim=1)
        out, h = x, x
        for _ in range(self.n_layers):
            h = adj @ h
            out = out + h
        return out


def modality_weights_init(n_users: int, n_modalities: int) -> nn.Parameter:
    """Per-user modality weights [U, M, 1]: xavier-normal logits then softmax over modalities (toolbox init)."""
    w = torch.empty(n_users, n_modalities, 1)
    nn.init.xavier_normal_(w)
    return nn.Parameter(torch.softmax(w, dim=1))


def init_dual_graphs(model: Recommender, ds: Dataset, dim: int, n_layers: int, user_k: int, device) -> None:
    """Per-modality GCNs over the u-i graph, user modality weights and the user co-occurrence graph
    (shared by DualGNN and DRAGON, which builds on it)."""
    require_features(ds, model.name)
    model.modalities = list(ds.features)
    for m, f in ds.features.items():
        model.register_buffer(f"feat_{m}", torch.from_numpy(f), persistent=False)
    model.gcn = nn.ModuleDict({m: ModalityGCN(ds.n_users, f.shape[1], dim, n_layers) for m, f in ds.features.items()})
    model.weight_u = modality_weights_init(ds.n_users, len(model.modalities))
    model.adj = SparseOp(bipartite_adjacency(ds.graph), device, symmetric=True)
    model.user_graph = SparseOp(user_cooccurrence_graph(ds.graph, user_k), device, symmetric=False)


def dual_reg_loss(model: Recommender, batch: Batch) -> torch.Tensor:
    """L2 on the batch users' preferences and the user modality weights (ln 2 x the toolbox's log2-BPR reg)."""
    pref = sum(model.gcn[m].preference[batch.users].pow(2).mean() for m in model.modalities)
    return LN2 * model.p.reg_weight * (pref + model.weight_u.pow(2).mean())


class DualGNNParams(Params):
    dim: int = Field(64, ge=1, description="embedding size of every modality channel")
    n_layers: int = Field(2, ge=0, description="propagation layers on the u-i graph (summed with layer 0)")
    user_k: int = Field(40, ge=1, description="neighbours per user in the co-occurrence graph")
    reg_weight: float = Field(1e-3, ge=0, description="L2 on batch preferences and the user modality weights")


@register
class DualGNN(Recommender):
    """DualGNN; see the module docstring for branches and deviations."""

    name = "dualgnn"
    paper = "DualGNN: Dual Graph Neural Network for Multimedia Recommendation (IEEE TMM)"
    year = 2021
    Params = DualGNNParams
    needs_features = True
    branch_doc = "fused: (I+G_uu) sum_m w_um u_m . sum_m i_m; <modality>: u_m . i_m (the modality GCN alone)"

    def __init__(self, ds: Dataset, params: DualGNNParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        init_dual_graphs(self, ds, params.dim, params.n_layers, params.user_k, device)

    def branch_names(self, ds: Dataset) -> list[str]:
        return ["fused", *ds.features]

    def modality_outputs(self) -> dict[str, torch.Tensor]:
        return {m: self.gcn[m](self.adj, getattr(self, f"feat_{m}")) for m in self.modalities}

    def forward(self) -> Representations:
        outs = self.modality_outputs()
        u_m = [outs[m][: self.n_users] for m in self.modalities]
        i_m = [outs[m][self.n_users :] for m in self.modalities]
        s = (torch.stack(u_m, dim=2) @ self.weight_u).squeeze(2)  # weighted_sum construction
        users = {"fused": s + self.user_graph @ s}  # user-user aggregation
        items = {"fused": sum(i_m)}
        for j, m in enumerate(self.modalities):
            users[m], items[m] = u_m[j], i_m[j]
        return Representations(users, items)

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor:
        return dual_reg_loss(self, batch)
