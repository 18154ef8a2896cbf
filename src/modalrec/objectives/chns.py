"""Cross-modal Hard Negative Sampling (BR-MRS Eq. 2) and the Sec. 3.6 alternatives.

For each positive (u, i+) a pool N(u) of non-interacted items is scored under every modality
branch (no gradient). CHNS trains branch m against the pool item that the OTHER modalities find
hardest: with two modalities i_v- = argmax s_v trains the text branch and i_t- = argmax s_t trains
the image branch (exactly Eq. 2). With M > 2 the other branches' [B, P] pool scores are combined
by their mean (default) or max before the argmax.

``chns_own`` (an extension, not in the paper) trains each branch against both the cross-assigned
and its own hardest negative: with cross-assignment alone a branch's own top-scored negatives are
never penalised unless the other branch also likes them, and the branches can learn to disagree
on negatives instead of ranking well (measured in docs/brmrs.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modalrec.models.base import Representations

SAMPLERS = ("uniform", "fused_hard", "same_modality_hard", "chns", "chns_own")


@torch.no_grad()
def pool_scores(reps: Representations, users: torch.Tensor, pool: torch.Tensor, branches: list[str]) -> dict:
    """Detached pool scores {branch: [B, P]} (Alg. 1 line 5)."""
    return {b: reps.score(b, users, pool).detach() for b in branches}


def pick(pool: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """The pool item with the highest score in each row: [B, P] -> [B]."""
    return pool.gather(1, scores.argmax(dim=1, keepdim=True)).squeeze(1)


def cross_assign(scores: dict[str, torch.Tensor], pool: torch.Tensor, reduce: str = "mean") -> dict[str, torch.Tensor]:
    """Eq. 2 generalised: branch m gets argmax over the pool of the other branches' combined score."""
    names = list(scores)
    if len(names) < 2:
        raise ValueError("cross-modal hard negatives need at least two modality branches")
    out = {}
    for m in names:
        others = torch.stack([scores[o] for o in names if o != m])
        comb = others.mean(0) if reduce == "mean" else others.max(0).values
        out[m] = pick(pool, comb)
    return out


def modality_negatives(
    reps: Representations,
    users: torch.Tensor,
    pool: torch.Tensor,
    modalities: list[str],
    sampler: str = "chns",
    reduce: str = "mean",
) -> dict[str, torch.Tensor]:
    """Negative [B] per modality branch under one of the Sec. 3.6 samplers."""
    if sampler == "uniform":  # a plain random negative per branch: distinct pool columns (the pool is uniform)
        return {m: pool[:, j % pool.shape[1]] for j, m in enumerate(modalities, start=1)}
    if sampler == "fused_hard":
        hard = pick(pool, pool_scores(reps, users, pool, ["fused"])["fused"])
        return {m: hard for m in modalities}
    scores = pool_scores(reps, users, pool, modalities)
    if sampler == "same_modality_hard":
        return {m: pick(pool, s) for m, s in scores.items()}
    if sampler == "chns":
        return cross_assign(scores, pool, reduce)
    if sampler == "chns_own":  # [B, 2]: the cross-assigned AND the branch's own hardest negative
        cross = cross_assign(scores, pool, reduce)
        return {m: torch.stack([cross[m], pick(pool, scores[m])], dim=1) for m in modalities}
    raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")


def chns_terms(
    reps: Representations, users: torch.Tensor, pos: torch.Tensor, negs: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Per-branch BPR against its assigned negative(s) [B] or [B, K], mean over the batch: {m: L_chns^m} (Eq. 2)."""
    out = {}
    for m, neg in negs.items():
        neg = neg if neg.dim() == 2 else neg[:, None]
        u = reps.user(m, users)
        p, n = reps.items_at(m, pos, neg)
        out[m] = F.softplus(torch.einsum("bd,bkd->bk", u, n) - (u * p).sum(-1, keepdim=True)).mean()
    return out
