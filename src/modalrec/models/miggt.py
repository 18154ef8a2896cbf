"""MIG-GT (Hu et al., AAAI 2025): modality-independent graph receptive fields + a sampling-based global transformer.

- Encoders: per modality, (random projection of features wider than the narrowest modality, ``random_projection``)
  -> dropout -> Linear(hidden) -> BN -> PReLU -> dropout -> Linear(dim) -> BN -> PReLU.
- Modality-independent receptive fields: one MGDCF diffusion per channel on the symmetric-normalised u-i graph
  of ``ds.graph`` with self loops and edge dropout: h <- beta A h + alpha h0, repeated k times, divided by
  gamma_k = beta^k + alpha sum_{i<k} beta^i. The ID channel (``k_e`` hops) starts from the user embeddings and
  zero item rows (item-ID embeddings off unless ``use_item_emb``); modality channels start from zero user rows
  and the encoded item features, with ``k_v`` hops for "image", ``k_t`` for the others (``hops`` overrides by
  name). The channel outputs are summed (z, with ``z_drop`` dropout).
- Sampling-based global transformer: each node attends over itself plus ``num_samples`` uniformly sampled item
  nodes of z (single head, 4-d queries/keys, values = tokens, output 0.1 attention + 0.9 input); the output at
  the node's own token is its final embedding.
- Loss: BPR (the objective) + l2_coef * 1/2 sum sq of ALL final embeddings / B + ``unsmooth_weight`` * the
  "unsmooth" cross-entropy: the batch user must score the positive item's own token above that item's sampled
  global tokens.

Branches: fused (the transformer output, ranking); <modality>: that modality's diffused channel (users get
non-zero rows only through diffusion, so a channel with 0 hops has all-zero users). The ID channel is in
``reps.extras["id"]``.
Fixes: evaluation is deterministic (dropout and edge dropout off, and a fixed sample set drawn once from
``eval_seed`` instead of fresh random samples per evaluation); no hard-coded CUDA; no DGL / torch_scatter.
Scaling: the released code sums BPR and the unsmooth loss over the batch; here both are batch means and the
L2 term is divided by the batch size, which keeps the published ratios between the terms. The unused
"memory" tensors, the unused per-modality transformers and the per-channel z-dropout (which feeds no loss)
of the released code are omitted.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from modalrec.data.dataset import Dataset
from modalrec.graphs import SparseOp, bipartite_adjacency
from modalrec.models.base import Batch, Params, Recommender, Representations
from modalrec.models.mgcn import require_modalities
from modalrec.models.registry import register


class MIGGTParams(Params):
    dim: int = Field(64, ge=1, description="embedding size")
    feat_hidden: int = Field(512, ge=1, description="hidden units of the feature encoders")
    k_e: int = Field(4, ge=0, description="diffusion hops of the ID channel")
    k_t: int = Field(2, ge=0, description="diffusion hops of the text channel (and of modalities not named image)")
    k_v: int = Field(1, ge=0, description="diffusion hops of the visual channel (modality 'image')")
    hops: dict[str, int] = Field(default_factory=dict, description="per-modality override of the hop counts")
    alpha: float = Field(0.1, ge=0, description="MGDCF restart weight")
    beta: float = Field(0.9, ge=0, description="MGDCF propagation weight")
    input_feat_drop: float = Field(0.3, ge=0, lt=1, description="dropout on the encoder inputs")
    feat_drop: float = Field(0.3, ge=0, lt=1, description="dropout inside the encoders")
    user_x_drop: float = Field(0.3, ge=0, lt=1, description="dropout on the user rows entering diffusion")
    item_x_drop: float = Field(0.3, ge=0, lt=1, description="dropout on the item rows entering diffusion")
    edge_drop: float = Field(0.2, ge=0, lt=1, description="dropout on the graph's edge weights (per step)")
    z_drop: float = Field(0.2, ge=0, lt=1, description="dropout on the channel outputs")
    num_samples: int = Field(10, ge=0, description="items sampled per node by the global transformer")
    unsmooth_weight: float = Field(1.0, ge=0, description="weight of the unsmooth cross-entropy")
    l2_coef: float = Field(1e-5, ge=0, description="L2 on all final embeddings (1/2 sum sq / B)")
    use_item_emb: bool = Field(False, description="feed item-ID embeddings into the ID channel")
    random_projection: bool = Field(True, description="randomly project wide features to the narrowest width")
    eval_seed: int = Field(0, description="seed of the fixed global-token sample used at evaluation")


def mgdcf_gamma(alpha: float, beta: float, k: int) -> float:
    """Normaliser gamma_k = beta^k + alpha * sum_{i<k} beta^i (MGDCF)."""
    return beta**k + alpha * sum(beta**i for i in range(k))


class DroppableGraph:
    """A fixed sparse matrix whose edge weights can be dropped out per step (with the transpose kept in sync)."""

    def __init__(self, m: sp.csr_matrix, device: torch.device | str):
        m = sp.csr_matrix(m, dtype=np.float32)
        m.sort_indices()
        self.full = SparseOp(m, device, symmetric=False)
        pos = sp.csr_matrix((np.arange(1, m.nnz + 1, dtype=np.float64), m.indices, m.indptr), shape=m.shape).T.tocsr()
        pos.sort_indices()
        self.perm = torch.from_numpy(pos.data.astype(np.int64) - 1).to(device)
        self.crow, self.col = self.full.mat.crow_indices(), self.full.mat.col_indices()
        self.crow_t, self.col_t = self.full.mat_t.crow_indices(), self.full.mat_t.col_indices()
        self.vals = self.full.mat.values()

    def dropped(self, p: float) -> SparseOp:
        """A SparseOp with each edge weight zeroed with probability p and the rest scaled by 1/(1-p)."""
        if p == 0:
            return self.full
        v = F.dropout(self.vals, p, training=True)
        op = SparseOp.__new__(SparseOp)
        op.shape, op.nnz, op.scipy = self.full.shape, self.full.nnz, None
        op.mat = torch.sparse_csr_tensor(self.crow, self.col, v, size=self.full.shape)
        op.mat_t = torch.sparse_csr_tensor(self.crow_t, self.col_t, v[self.perm], size=self.full.shape)
        return op


class Encoder(nn.Module):
    """Linear -> BN -> PReLU -> dropout -> Linear -> BN -> PReLU (xavier-uniform weights)."""

    def __init__(self, d_in: int, hidden: int, d_out: int, drop: float):
        super().__init__()
        self.lin1, lin2 = nn.Linear(d_in, hidden), nn.Linear(hidden, d_out)
        for lin in (self.lin1, lin2):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.rest = nn.Sequential(
            nn.BatchNorm1d(hidden), nn.PReLU(), nn.Dropout(drop), lin2, nn.BatchNorm1d(d_out), nn.PReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.lin1(x))


class GlobalAttention(nn.Module):
    """Light single-head attention over a node's tokens (itself + sampled items), values = the tokens.

    out_t = 0.1 softmax(q_t K^T / sqrt(a)) Z + 0.9 z_t (the release's residual mix, no LayerNorm / FFN).
    """

    def __init__(self, dim: int, att_dim: int = 4):
        super().__init__()
        self.q, self.k = nn.Linear(dim, att_dim), nn.Linear(dim, att_dim)
        for lin in (self.q, self.k):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def own(self, z: torch.Tensor, items: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        """Output at each node's own token, [N, d]; q/k are projected once per node, then gathered."""
        q, k = self.q(z), self.k(items)
        k_self = self.k(z)
        logits = (
            torch.cat([(q * k_self).sum(-1, keepdim=True), torch.einsum("na,nsa->ns", q, k[samples])], dim=1)
            / self.q.out_features**0.5
        )
        w = torch.softmax(logits, dim=1)
        att = w[:, :1] * z + torch.einsum("ns,nsd->nd", w[:, 1:], items[samples])
        return 0.1 * att + 0.9 * z

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """All tokens' outputs for explicit token sets [R, T, d] -> [R, T, d]."""
        att = self.q(tokens) @ self.k(tokens).transpose(1, 2) / self.q.out_features**0.5
        return 0.1 * (torch.softmax(att, dim=-1) @ tokens) + 0.9 * tokens


@register
class MIGGT(Recommender):
    """MIG-GT; see the module docstring for branches, fixes and scaling choices."""

    name = "mig-gt"
    paper = "Modality-Independent Graph Neural Networks with Global Transformers for Multimodal Recommendation (AAAI)"
    year = 2025
    Params = MIGGTParams
    needs_features = True
    branch_doc = "fused: global-transformer output; <modality>: that modality's diffused channel (own hop count)"
    dataset_defaults = {
        "baby": {"k_e": 4, "k_t": 2, "k_v": 1, "feat_hidden": 512, "l2_coef": 1e-5, "input_feat_drop": 0.3,
                 "feat_drop": 0.3, "user_x_drop": 0.3, "item_x_drop": 0.3, "edge_drop": 0.2, "z_drop": 0.2,
                 "num_samples": 10},
        "sports": {"k_e": 4, "k_t": 2, "k_v": 3, "feat_hidden": 512, "l2_coef": 1e-4, "input_feat_drop": 0.2,
                   "feat_drop": 0.5, "user_x_drop": 0.1, "item_x_drop": 0.2, "edge_drop": 0.5, "z_drop": 0.2,
                   "num_samples": 10},
        "clothing": {"k_e": 2, "k_t": 2, "k_v": 0, "feat_hidden": 2048, "l2_coef": 1e-5, "input_feat_drop": 0.1,
                     "feat_drop": 0.4, "user_x_drop": 0.1, "item_x_drop": 0.1, "edge_drop": 0.25, "z_drop": 0.3,
                     "num_samples": 20},
    }  # fmt: skip

    def __init__(self, ds: Dataset, params: MIGGTParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        p = params
        self.modalities = require_modalities(ds, self.name, 1)
        self.hop = {m: p.hops.get(m, p.k_v if m == "image" else p.k_t) for m in self.modalities}
        width = min(f.shape[1] for f in ds.features.values())
        rng = np.random.default_rng(0)
        for m, f in ds.features.items():
            x = np.asarray(f, dtype=np.float32)
            if p.random_projection and x.shape[1] > width:  # fixed Gaussian random projection (use_rp)
                x = x @ (rng.standard_normal((x.shape[1], width), dtype=np.float32) / np.sqrt(width))
            x = np.ascontiguousarray(x, dtype=np.float32)
            self.register_buffer(f"feat_{m}", torch.from_numpy(x), persistent=False)
        self.enc = nn.ModuleDict(
            {
                m: Encoder(getattr(self, f"feat_{m}").shape[1], p.feat_hidden, p.dim, p.feat_drop)
                for m in self.modalities
            }
        )
        self.user_emb = nn.Parameter(torch.randn(ds.n_users, p.dim) / p.dim**0.5)
        self.item_emb = nn.Parameter(torch.randn(ds.n_items, p.dim) / p.dim**0.5) if p.use_item_emb else None
        self.graph = DroppableGraph(bipartite_adjacency(ds.graph, self_loops=True, norm="sym"), device)
        self.attn = GlobalAttention(p.dim)
        self.drop_in = nn.Dropout(p.input_feat_drop)
        self.drop_user, self.drop_item, self.drop_z = (
            nn.Dropout(p.user_x_drop),
            nn.Dropout(p.item_x_drop),
            nn.Dropout(p.z_drop),
        )
        n = ds.n_users + ds.n_items
        gen = torch.Generator().manual_seed(p.eval_seed)
        self.register_buffer(
            "eval_samples", torch.randint(0, ds.n_items, (n, p.num_samples), generator=gen), persistent=False
        )

    def branch_names(self, ds: Dataset) -> list[str]:
        return ["fused", *ds.features]

    def diffuse(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """MGDCF: h <- beta A h + alpha h0, k times, divided by gamma_k (fresh edge dropout per channel)."""
        p = self.p
        adj = self.graph.dropped(p.edge_drop) if self.training else self.graph.full
        h = x
        for _ in range(k):
            h = p.beta * (adj @ h) + p.alpha * x
        return h / mgdcf_gamma(p.alpha, p.beta, k)

    def forward(self) -> Representations:
        p, nu = self.p, self.n_users
        zeros_u = self.user_emb.new_zeros(nu, p.dim)
        items0 = (
            self.drop_item(self.item_emb) if self.item_emb is not None else self.user_emb.new_zeros(self.n_items, p.dim)
        )
        channels = {"id": self.diffuse(torch.cat([self.drop_user(self.user_emb), items0]), p.k_e)}
        for m in self.modalities:
            enc = self.enc[m](self.drop_in(getattr(self, f"feat_{m}")))
            channels[m] = self.diffuse(torch.cat([zeros_u, self.drop_item(enc)]), self.hop[m])
        z = self.drop_z(sum(channels.values()))  # the per-channel z-dropout of the release feeds no loss: skipped
        if self.training:
            samples = torch.randint(0, self.n_items, (z.shape[0], p.num_samples), device=z.device)
        else:
            samples = self.eval_samples
        out = self.attn.own(z, z[nu:], samples)
        users = {"fused": out[:nu]}
        items: dict = {"fused": out[nu:]}
        for m in self.modalities:
            users[m], items[m] = channels[m][:nu], channels[m][nu:]
        return Representations(users, items, {"z": z, "samples": samples, "id": channels["id"]})

    def tokens(self, z: torch.Tensor, samples: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """[rows, 1 + S, d]: each node's own z followed by the z of its sampled items."""
        return torch.cat([z[rows].unsqueeze(1), z[self.n_users :][samples[rows]]], dim=1)

    def aux_losses(self, reps: Representations, batch: Batch) -> dict[str, torch.Tensor]:
        if self.p.unsmooth_weight == 0 or self.p.num_samples == 0 or "z" not in reps.extras:
            return {}
        rows = batch.pos + self.n_users
        tok = self.attn(self.tokens(reps.extras["z"], reps.extras["samples"], rows))  # [B, 1 + S, d]
        logits = torch.einsum("bd,btd->bt", reps.user("fused", batch.users), tok)
        target = torch.zeros(len(batch), dtype=torch.long, device=logits.device)
        return {"miggt_unsmooth": self.p.unsmooth_weight * F.cross_entropy(logits, target)}

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor:
        sq = reps.users["fused"].pow(2).sum() + reps.all_items("fused").pow(2).sum()
        return self.p.l2_coef * sq / (2.0 * len(batch))
