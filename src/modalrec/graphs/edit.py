"""Collaborative-prior edge editing (trust paper, Sec. 5.2): prune the lowest-s_ui training edges or add the
highest-s_ui non-edges, applied to the supervision edges, the propagation graph, or both.

Evaluation always filters the ORIGINAL training positives (Sec. 5.3): every edited Dataset sets
``mask_edges`` explicitly to the positives before editing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from modalrec.data.dataset import Dataset
from modalrec.data.dataset import binary_csr as _binary
from modalrec.data.dataset import edge_pairs as _pairs
from modalrec.errors import ConfigError


def n_edits(ratio: float, n_edges: int) -> int:
    """r |E_train| rounded down (the same floor as the stress corruptions)."""
    return int(np.floor(ratio * n_edges + 1e-9))


def edge_scores(
    users: np.ndarray, items: np.ndarray, ue: np.ndarray, ie: np.ndarray, chunk: int = 1 << 20
) -> np.ndarray:
    """s_ui = e_u . e_i (Eq. 15) for aligned index arrays, in chunks."""
    out = np.empty(len(users), dtype=np.float32)
    for s in range(0, len(users), chunk):
        out[s : s + chunk] = np.einsum("nd,nd->n", ue[users[s : s + chunk]], ie[items[s : s + chunk]])
    return out


def prune_edges(
    edges: sp.csr_matrix, ue: np.ndarray, ie: np.ndarray, ratio: float
) -> tuple[sp.csr_matrix, dict[str, Any]]:
    """Eq. 16: remove exactly the floor(r |E|) edges with the lowest s_ui (ties: lower (u, i) first)."""
    u, i = _pairs(edges)
    s = edge_scores(u, i, ue, ie)
    n = n_edits(ratio, len(u))
    order = np.lexsort((i, u, s))  # by score, then user, then item: deterministic
    drop = order[:n]
    keep = np.ones(len(u), dtype=bool)
    keep[drop] = False
    rec = {"op": "prune", "target": n, "removed": n, "users": u[drop], "items": i[drop], "scores": s[drop]}
    return _binary(u[keep], i[keep], edges.shape), rec


def _topk_non_edges(
    a: torch.Tensor, b: torch.Tensor, known: sp.csr_matrix, k: int, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every row r of ``a``: the k columns c of a @ b.T with the largest scores among (r, c) not in ``known``."""
    n_rows, n_cols = a.shape[0], b.shape[0]
    k = min(k, n_cols)
    rows, cols, vals = [], [], []
    bt = b.T.contiguous()
    for s in range(0, n_rows, chunk):
        sc = a[s : s + chunk] @ bt
        sub = known[s : s + chunk].tocoo()
        sc[torch.from_numpy(sub.row.astype(np.int64)), torch.from_numpy(sub.col.astype(np.int64))] = float("-inf")
        v, c = torch.topk(sc, k, dim=1)
        ok = torch.isfinite(v)
        r = torch.arange(s, s + sc.shape[0]).unsqueeze(1).expand_as(c)
        rows.append(r[ok].numpy())
        cols.append(c[ok].numpy())
        vals.append(v[ok].numpy())
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def complete_edges(
    edges: sp.csr_matrix,
    ue: np.ndarray,
    ie: np.ndarray,
    ratio: float,
    k: int,
    holdout: sp.csr_matrix,
    chunk: int | None = None,
) -> tuple[sp.csr_matrix, dict[str, Any]]:
    """Eq. 17-21: candidates = per-user top-K plus per-item top-K non-edges by s_ui; add the top floor(r |E|)
    by s_ui, then drop those that are validation/test pairs (``holdout``), so at most r |E| are added."""
    n_users, n_items = edges.shape
    ut, it = torch.from_numpy(np.ascontiguousarray(ue)), torch.from_numpy(np.ascontiguousarray(ie))
    ch_u = chunk or max(1, int(2**24 // max(n_items, 1)))
    ch_i = chunk or max(1, int(2**24 // max(n_users, 1)))
    cu, ci, cv = _topk_non_edges(ut, it, edges.tocsr(), k, ch_u)  # Eq. 17
    ri, ru, rv = _topk_non_edges(it, ut, edges.T.tocsr(), k, ch_i)  # Eq. 18
    key = np.concatenate([cu * n_items + ci, ru * n_items + ri])  # Eq. 19: union
    val = np.concatenate([cv, rv])
    key, first = np.unique(key, return_index=True)
    val = val[first]
    target = n_edits(ratio, edges.nnz)
    order = np.lexsort((key, -val))[:target]  # Eq. 20: top-r by similarity (ties: smaller key)
    top_key = key[order]
    hu, hi = _pairs(holdout)
    leak = np.isin(top_key, np.unique(hu * n_items + hi))
    add = top_key[~leak]
    au, ai = add // n_items, add % n_items
    u, i = _pairs(edges)
    new = _binary(np.concatenate([u, au]), np.concatenate([i, ai]), edges.shape)
    rec = {
        "op": "complete",
        "target": target,
        "candidates": int(len(key)),
        "dropped_holdout": int(leak.sum()),
        "added": int(len(add)),
        "users": au,
        "items": ai,
        "scores": val[order][~leak],
    }
    return new, rec


def _apply(base: sp.csr_matrix, rec: dict[str, Any]) -> sp.csr_matrix:
    """Apply an edit record (removed or added pairs) to another edge set."""
    u, i = _pairs(base)
    if rec["op"] == "complete":
        return _binary(np.concatenate([u, rec["users"]]), np.concatenate([i, rec["items"]]), base.shape)
    n_items = base.shape[1]
    drop = np.isin(u * n_items + i, rec["users"] * n_items + rec["items"])
    return _binary(u[~drop], i[~drop], base.shape)


def edit_dataset(
    ds: Dataset,
    op: str,
    ratio: float = 0.05,
    where: str = "train",
    k: int = 20,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
    prior_epochs: int = 50,
    prior_dim: int = 64,
    prior_lr: float = 0.01,
    seed: int = 0,
    threads: int | None = None,
    cache: bool = True,
) -> tuple[Dataset, dict[str, Any]]:
    """Edit the training edges with a LightGCN prior trained on ``ds`` (possibly noisy); ``where`` picks the
    supervision edges (train), the propagation graph (graph) or both. ``mask_edges`` = original positives."""
    if op not in ("prune", "complete"):
        raise ConfigError(f"edit.op must be prune or complete, got {op!r}")
    if where not in ("train", "graph", "both"):
        raise ConfigError(f"edit.where must be train, graph or both, got {where!r}")
    if prior is None:
        from modalrec.rectify.anchors import lightgcn_embeddings

        prior = lightgcn_embeddings(
            ds, dim=prior_dim, epochs=prior_epochs, seed=seed, threads=threads, cache=cache, lr=prior_lr
        )
    ue, ie = (np.ascontiguousarray(p, dtype=np.float32) for p in prior)
    if op == "prune":
        edited, rec = prune_edges(ds.train, ue, ie, ratio)
    else:
        edited, rec = complete_edges(ds.train, ue, ie, ratio, k, (ds.valid + ds.test).tocsr())
    original_mask = ds.mask.copy()  # Sec. 5.3: filter w.r.t. the positives BEFORE editing
    graph = ds.graph
    new_train = edited if where in ("train", "both") else ds.train
    new_graph = (edited if graph is ds.train else _apply(graph, rec)) if where in ("graph", "both") else graph.copy()
    summary = {k2: v for k2, v in rec.items() if k2 not in ("users", "items", "scores")}
    prov = {**ds.provenance, "edit": {"op": op, "ratio": ratio, "where": where, "k": k, **summary}}
    out = ds.replace(train=new_train, graph_edges=new_graph, mask_edges=original_mask, provenance=prov)
    return out, {"where": where, "ratio": ratio, **rec}
