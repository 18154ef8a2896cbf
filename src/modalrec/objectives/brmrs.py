"""The BR-MRS objective (Eq. 5): lambda_h * L_chns + lambda_s * L_syn, plug-and-play on any model.

Works with every model whose ``branch_names`` include modality branches beside "fused"; the
model's own auxiliary losses and L2 rule are added by the trainer as usual (lambda ||Theta||^2
is the model's reg rule). Per positive, ``prepare`` draws a uniform candidate pool N(u) outside
the user's training positives (Alg. 1 line 4). L_syn uses ``pool[:, 0]`` as its uniformly
sampled negative: the pool is i.i.d. uniform, so its first column is a uniform member of N(u)
(Alg. 1 line 8). The plain fused BPR term (``loss.bpr_weight``) is off unless asked for.
"""

from __future__ import annotations

import numpy as np
import torch

from modalrec.config.schema import RunConfig
from modalrec.data.dataset import Dataset
from modalrec.errors import ConfigError
from modalrec.models.base import Batch, Recommender, Representations
from modalrec.objectives.bpr import bpr_term
from modalrec.objectives.chns import chns_terms, modality_negatives
from modalrec.objectives.samplers import NegativeSampler
from modalrec.objectives.synergy import synergy_term


def modality_branches(model: Recommender, ds: Dataset) -> list[str]:
    """The model's branches other than "fused"."""
    return [b for b in model.branch_names(ds) if b != "fused"]


class BRMRSObjective:
    """CHNS (Eq. 2, or a Sec. 3.6 sampler) + synergy-aware BPR (Eq. 4), each a mean over the batch."""

    def __init__(self, cfg: RunConfig, model: Recommender, ds: Dataset, sampler: NegativeSampler):
        self.cfg, self.model, self.ds, self.sampler = cfg, model, ds, sampler
        lc = cfg.loss
        self.modalities = modality_branches(model, ds)
        need = 2 if lc.sampler.startswith("chns") else 1
        if len(self.modalities) < need:
            have = "only the fused branch" if not self.modalities else f"one modality branch ({self.modalities[0]})"
            raise ConfigError(
                f"model {cfg.model!r} exposes {have}; objective=brmrs with loss.sampler={lc.sampler} needs "
                f">= {need} modality branches (use a multimodal model such as brmrs, vbpr or freedom)"
            )
        self.lam_h, self.lam_s, self.margin = lc.chns_weight, lc.syn_weight, lc.margin
        self.bpr_weight = 0.0 if lc.bpr_weight is None else lc.bpr_weight
        self.pool_size, self.kind, self.reduce = lc.pool_size, lc.sampler, lc.chns_reduce

    def prepare(self, batch: Batch, rng: np.random.Generator) -> None:
        """Attach the candidate pool [B, P] (vectorised; training positives excluded)."""
        users = batch.users.cpu().numpy()
        pool = self.sampler.sample(users, rng, n=self.pool_size).reshape(len(users), self.pool_size)
        batch.extra["pool"] = torch.from_numpy(pool).to(batch.users.device)

    def __call__(self, reps: Representations, batch: Batch) -> dict[str, torch.Tensor]:
        pool = batch.extra["pool"]
        out: dict[str, torch.Tensor] = {}
        if self.lam_h:
            negs = modality_negatives(reps, batch.users, pool, self.modalities, self.kind, self.reduce)
            terms = chns_terms(reps, batch.users, batch.pos, negs)
            out["chns"] = self.lam_h * sum(terms.values())  # L_chns = sum_m L_chns^m (Eq. 2)
        if self.lam_s:
            syn = synergy_term(reps, batch.users, batch.pos, pool[:, 0], self.modalities, self.margin)
            out["syn"] = self.lam_s * syn
        if self.bpr_weight:
            out["bpr"] = self.bpr_weight * bpr_term(reps, batch, "fused")
        return out
