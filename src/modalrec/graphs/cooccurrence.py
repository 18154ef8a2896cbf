"""User-user co-occurrence graph (DualGNN / DRAGON): sparse R.R^T in row chunks, top-k per row, softmax weights.

Two users are neighbours when they share items; the count of shared items ranks them. The
community script builds a dense U x U matrix with an O(U^2) Python loop (148 GB on Electronics);
here each chunk of rows is one sparse product, the diagonal is dropped, and every row keeps its
k largest counts (ties: smaller user index first) with weights softmax(counts) over the kept
neighbours. Rows without neighbours stay empty (their message is 0, as in the toolbox).
Deviation: the toolbox pads rows with fewer than k neighbours by randomly duplicating some of
them every epoch (which re-weights those neighbours at random); we keep each neighbour once, so
the graph is fixed and built once (cached by content hash).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from modalrec.io import atomic_path, cache_dir, hash_arrays


def _row_chunks(r: sp.csr_matrix, budget: int) -> list[tuple[int, int]]:
    """Row ranges whose product R[rows].R^T has at most about ``budget`` partial products."""
    item_deg = np.asarray(r.sum(axis=0)).ravel()
    cost = np.asarray(r @ item_deg).ravel()  # partial products per user row
    bounds, start = [], 0
    cum = np.cumsum(cost)
    while start < r.shape[0]:
        base = cum[start - 1] if start else 0.0
        stop = int(np.searchsorted(cum, base + budget, side="right"))
        stop = max(stop, start + 1)
        bounds.append((start, min(stop, r.shape[0])))
        start = stop
    return bounds


def topk_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of every row (ties: smaller column first), vectorised."""
    m = m.tocsr()
    m.sort_indices()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, rows))
    rank = np.arange(len(order)) - m.indptr[rows[order]]
    keep = order[rank < k]
    out = sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)
    out.sort_indices()
    return out


def row_softmax(m: sp.csr_matrix) -> sp.csr_matrix:
    """Softmax over the stored entries of every row (empty rows stay empty)."""
    m = m.tocsr().astype(np.float64)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    mx = np.full(m.shape[0], -np.inf)
    np.maximum.at(mx, rows, m.data)
    e = np.exp(m.data - mx[rows])
    z = np.bincount(rows, weights=e, minlength=m.shape[0])
    out = sp.csr_matrix(((e / z[rows]).astype(np.float32), m.indices, m.indptr), shape=m.shape)
    return out


def cooccurrence_counts(r: sp.csr_matrix, k: int, budget: int = 20_000_000) -> sp.csr_matrix:
    """Top-k co-occurrence counts per user row of R.R^T without the diagonal (chunked, never U x U dense)."""
    r = sp.csr_matrix(r, dtype=np.float32)
    r.data[:] = 1.0
    rt = r.T.tocsr()
    parts = []
    for s, e in _row_chunks(r, budget):
        c = (r[s:e] @ rt).tocoo()
        off = c.row + s != c.col
        c = sp.csr_matrix((c.data[off], (c.row[off], c.col[off])), shape=(e - s, r.shape[0]))
        parts.append(topk_per_row(c, k))
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, 0), dtype=np.float32)


def user_cooccurrence_graph(r: sp.csr_matrix, k: int = 40, cache: bool = True) -> sp.csr_matrix:
    """U x U row-stochastic graph: top-k co-occurring users, softmax(count) weights (DualGNN, DRAGON)."""
    r = sp.csr_matrix(r)
    key = hash_arrays("user-cooc", r, k)
    path = cache_dir() / f"cooc-{key}.npz"
    if cache and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    g = row_softmax(cooccurrence_counts(r, k))
    g.sort_indices()
    if cache:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, data=g.data, indices=g.indices, indptr=g.indptr, shape=np.array(g.shape))
    return g
