"""Top-K metrics computed at once from a hit matrix (one cumulative sum, no per-user loop).

For a user u with n_u held-out items and hit_i = 1 when the item at rank i is held out:
Recall@K = hits@K / n_u; Precision@K = hits@K / K; HitRate@K = 1[hits@K > 0];
NDCG@K = sum_{i<=K} hit_i / log2(i+1) / IDCG, IDCG = sum_{i<=min(K, n_u)} 1 / log2(i+1);
MAP@K = sum_{i<=K} Precision@i * hit_i / min(K, n_u). Each is averaged over users.
"""

from __future__ import annotations

import numpy as np


def per_user_metrics(hits: np.ndarray, n_pos: np.ndarray, topk: list[int], metrics: list[str]) -> dict[str, np.ndarray]:
    """Per-user values ``{"recall@10": [n_users], ...}`` from ``hits`` [n_users, max(topk)] (0/1)."""
    hits = hits.astype(np.float64)
    n_pos = n_pos.astype(np.float64)
    kmax = hits.shape[1]
    ranks = np.arange(1, kmax + 1, dtype=np.float64)
    cum = np.cumsum(hits, axis=1)
    disc = 1.0 / np.log2(ranks + 1.0)
    dcg = np.cumsum(hits * disc, axis=1)
    idcg_table = np.concatenate([[0.0], np.cumsum(disc)])
    ap = np.cumsum(hits * cum / ranks, axis=1)
    out: dict[str, np.ndarray] = {}
    for k in topk:
        c = cum[:, k - 1]
        denom = np.minimum(k, n_pos)
        for m in metrics:
            if m == "recall":
                v = c / n_pos
            elif m == "precision":
                v = c / k
            elif m == "hit":
                v = (c > 0).astype(np.float64)
            elif m == "ndcg":
                v = dcg[:, k - 1] / idcg_table[denom.astype(np.int64)]
            elif m == "map":
                v = ap[:, k - 1] / denom
            else:
                raise ValueError(f"unknown metric {m!r}")
            out[f"{m}@{k}"] = v
    return out


def metrics_from_hits(hits: np.ndarray, n_pos: np.ndarray, topk: list[int], metrics: list[str]) -> dict[str, float]:
    """Mean over users of each metric at each K."""
    if len(hits) == 0:
        return {f"{m}@{k}": float("nan") for k in topk for m in metrics}
    return {k: float(v.mean()) for k, v in per_user_metrics(hits, n_pos, topk, metrics).items()}
