"""SMORE (Ong & Khong, WSDM 2025): spectrum-based modality fusion with a fusion item-item graph.

- Graphs: per modality, cosine top-k with similarity values, sym-normalised (as MGCN; ``image_knn_k`` for the
  modality named "image", ``text_knn_k`` for every other one unless ``knn_k`` names it); the fusion graph is the
  element-wise max of the normalised sparse modality adjacencies. All built once, sparse, cached.
- Spectral fusion: rFFT of each projected feature table along the embedding dimension; a learnable complex
  filter per modality denoises it (irfft(F_m W_m)); the fusion signal is irfft(prod_m F_m * W_f), a circular
  convolution of the modalities.
- Views: item-ID embeddings gated by sigma(Linear(filtered signal)), one propagation layer per ``n_layers`` on the
  modality / fusion graph, users = R_norm @ items; the u-i view is LightGCN (mean over ``n_ui_layers`` + 1 layers).
- Preference module: softmax(query_m(fusion view)) over the embedding dimension weights each modality view;
  sigma(Linear(content)) gates (with dropout in training only) weight the modality and fusion views;
  side = mean of the gated views; output = content + side.
- Loss: BPR + reg_weight * 1/2 sum sq / B on the final batch embeddings + cl_loss * InfoNCE(side, content)
  on the batch's positive items and users (temperature ``cl_temp``, 0.2 as in the released code).

Branches: fused (content + side, ranking); <modality>: that modality's item-item view (denoised, ID-gated,
propagated on its kNN graph; users = R_norm @ items). Needs at least two modalities (any names); with more
than two, the fusion signal multiplies all spectra and the fusion graph takes the max over all graphs.
Fixes: no hard-coded CUDA; the preference dropout is off in evaluation; one forward per evaluation.
Deviation: raw features frozen by default (``train_features=true`` fine-tunes them as MMRec does).
"""

from __future__ import annotations

import math

import scipy.sparse as sp
import torch
from pydantic import Field
from torch import nn

from modalrec.data.dataset import Dataset
from modalrec.graphs import SparseOp
from modalrec.models.base import Batch, Params, Recommender, Representations, init_embedding, l2_rule
from modalrec.models.contrastive import info_nce
from modalrec.models.features import FeatureProjector, Precision, precision_field
from modalrec.models.mgcn import ModalityViews, gate, gate_bank, require_modalities
from modalrec.models.registry import register


class SMOREParams(Params):
    dim: int = Field(64, ge=2, description="embedding size")
    n_ui_layers: int = Field(2, ge=0, description="LightGCN layers of the u-i view")
    n_layers: int = Field(1, ge=0, description="layers on the modality and fusion item-item graphs")
    image_knn_k: int = Field(10, ge=1, description="neighbours per item in the graph of the modality 'image'")
    text_knn_k: int = Field(10, ge=1, description="neighbours per item in the graphs of the other modalities")
    knn_k: dict[str, int] = Field(default_factory=dict, description="per-modality override of the k above")
    cl_loss: float = Field(0.01, ge=0, description="weight of the side/content InfoNCE terms")
    cl_temp: float = Field(0.2, gt=0, description="InfoNCE temperature")
    reg_weight: float = Field(1e-4, ge=0, description="L2 on the batch's final embeddings (1/2 sum sq / B)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the preference gates (training only)")
    train_features: bool = Field(False, description="fine-tune the raw feature tables (MMRec does)")
    feature_precision: Precision = precision_field()


def max_fusion(graphs: list[sp.csr_matrix]) -> sp.csr_matrix:
    """Element-wise max of sparse adjacencies (union of edges, the larger weight where both have one)."""
    out = graphs[0].tocsr()
    for g in graphs[1:]:
        out = out.maximum(g.tocsr())
    out = sp.csr_matrix(out)
    out.sort_indices()
    return out


@register
class SMORE(Recommender):
    """SMORE; see the module docstring for branches, fixes and deviations."""

    name = "smore"
    paper = "Spectrum-based Modality Representation Fusion Graph Convolutional Network for Multimodal Recommendation"
    year = 2025
    Params = SMOREParams
    needs_features = True
    branch_doc = "fused: content + side; <modality>: denoised ID-gated item-item view (users = R_norm @ items)"
    dataset_defaults = {
        "baby": {"n_ui_layers": 4, "n_layers": 1, "image_knn_k": 40, "text_knn_k": 15, "cl_loss": 0.01,
                 "reg_weight": 1e-4, "dropout": 0.1},
        "sports": {"n_ui_layers": 3, "n_layers": 1, "image_knn_k": 10, "text_knn_k": 10, "cl_loss": 0.03,
                   "reg_weight": 1e-4, "dropout": 0.0},
        "clothing": {"n_ui_layers": 3, "n_layers": 1, "image_knn_k": 40, "text_knn_k": 10, "cl_loss": 0.01,
                     "reg_weight": 1e-5, "dropout": 0.0},
    }  # fmt: skip

    def __init__(self, ds: Dataset, params: SMOREParams, device: torch.device | str = "cpu"):
        super().__init__(ds, params, device)
        self.modalities = require_modalities(ds, self.name, 2)
        d = params.dim
        ks = {
            m: params.knn_k.get(m, params.image_knn_k if m == "image" else params.text_knn_k) for m in self.modalities
        }
        self.user_emb = init_embedding(ds.n_users, d)
        self.item_emb = init_embedding(ds.n_items, d)
        self.views = ModalityViews(ds, ks, device)
        self.fusion_graph = SparseOp(max_fusion(list(self.views.graphs_sp.values())), device)
        self.feats = FeatureProjector(ds, d, params.train_features, params.feature_precision, device)
        n_freq = d // 2 + 1
        self.filters = nn.ParameterDict({m: nn.Parameter(torch.randn(1, n_freq, 2)) for m in self.modalities})
        self.fusion_filter = nn.Parameter(torch.randn(1, n_freq, 2))
        self.gate_item = nn.ModuleDict({m: gate(d) for m in self.modalities})
        self.gate_fusion = gate(d)
        # per-modality queries Linear -> tanh -> Linear(no bias) on the fusion view, batched over modalities
        n_mod = len(self.modalities)
        self.query_in = nn.Linear(d, n_mod * d)
        self.query_out = nn.Parameter(torch.empty(n_mod, d, d))  # [modality, out, in]
        for j in range(n_mod):
            nn.init.kaiming_uniform_(self.query_out.data[j], a=math.sqrt(5))  # nn.Linear's default
        self.prefer = gate_bank(d, len(self.modalities) + 1)  # per modality, then the fusion view
        self.drop = nn.Dropout(params.dropout)

    def branch_names(self, ds: Dataset) -> list[str]:
        return ["fused", *ds.features]

    def spectrum(self, projected: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Uni-modal denoising (per-modality complex filter) and cross-modal fusion (product of spectra)."""
        d = self.p.dim
        spec = {m: torch.fft.rfft(x, dim=1, norm="ortho") for m, x in projected.items()}
        denoised = {
            m: torch.fft.irfft(s * torch.view_as_complex(self.filters[m]), n=d, dim=1, norm="ortho")
            for m, s in spec.items()
        }
        prod = None
        for s in spec.values():
            prod = s if prod is None else prod * s
        fusion = torch.fft.irfft(prod * torch.view_as_complex(self.fusion_filter), n=d, dim=1, norm="ortho")
        return denoised, fusion

    def forward(self) -> Representations:
        p, v = self.p, self.views
        denoised, fusion = self.spectrum({m: self.feats(m) for m in self.modalities})
        content = v.content(self.user_emb, self.item_emb, p.n_ui_layers)
        views = {m: v.item_view(v.graphs[m], self.item_emb * self.gate_item[m](denoised[m]), p.n_layers)
                 for m in self.modalities}  # fmt: skip
        fusion_view = v.item_view(self.fusion_graph, self.item_emb * self.gate_fusion(fusion), p.n_layers)
        prefer = self.drop(self.prefer(content)).view(-1, len(self.modalities) + 1, p.dim)
        q = torch.tanh(self.query_in(fusion_view)).view(-1, len(self.modalities), p.dim)
        att = torch.softmax(torch.einsum("nmi,moi->nmo", q, self.query_out), dim=-1)  # over the embedding dim
        side = prefer[:, -1] * fusion_view
        for j, m in enumerate(self.modalities):  # modality-aware preference module
            side = side + prefer[:, j] * att[:, j] * views[m]
        side = side / (len(self.modalities) + 1)
        out = content + side
        nu = self.n_users
        users = {"fused": out[:nu]}
        items: dict = {"fused": out[nu:]}
        for m, x in views.items():
            users[m], items[m] = x[:nu], x[nu:]
        return Representations(users, items, {"side": side, "content": content})

    def aux_losses(self, reps: Representations, batch: Batch) -> dict[str, torch.Tensor]:
        if self.p.cl_loss == 0 or "side" not in reps.extras:
            return {}
        side, content, nu, t = reps.extras["side"], reps.extras["content"], self.n_users, self.p.cl_temp
        prec = self.feats.precision
        cl = info_nce(side[nu + batch.pos], content[nu + batch.pos], t, prec) + info_nce(
            side[batch.users], content[batch.users], t, prec
        )
        return {"smore_cl": self.p.cl_loss * cl}

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor:
        u = reps.user("fused", batch.users)
        pos, neg = reps.items_at("fused", batch.pos, batch.neg)
        return self.p.reg_weight * l2_rule(u, pos, neg)
