"""The user-item bipartite graph: symmetric normalised adjacency (LightGCN) and friends."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _inv_sqrt(d: np.ndarray) -> np.ndarray:
    out = np.zeros_like(d, dtype=np.float64)
    nz = d > 0
    out[nz] = d[nz] ** -0.5
    return out


def bipartite_adjacency(r: sp.csr_matrix, self_loops: bool = False, norm: str = "sym") -> sp.csr_matrix:
    """(U+I) x (U+I) adjacency [[0, R], [R^T, 0]], normalised ``sym`` (D^-1/2 A D^-1/2) or ``left``."""
    n_u, n_i = r.shape
    r = r.tocsr().astype(np.float32)
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    if self_loops:
        a = a + sp.identity(n_u + n_i, dtype=np.float32, format="csr")
    deg = np.asarray(a.sum(axis=1)).ravel()
    if norm == "sym":
        d = sp.diags(_inv_sqrt(deg).astype(np.float32))
        a = d @ a @ d
    elif norm == "left":
        inv = np.zeros_like(deg)
        inv[deg > 0] = 1.0 / deg[deg > 0]
        a = sp.diags(inv.astype(np.float32)) @ a
    else:
        raise ValueError(f"unknown normalisation {norm!r}")
    a = a.tocsr()
    a.sort_indices()
    return a


def normalized_rating(r: sp.csr_matrix) -> sp.csr_matrix:
    """D_u^-1/2 R D_i^-1/2 (the user-item block of the symmetric adjacency)."""
    r = r.tocsr().astype(np.float32)
    du = _inv_sqrt(np.asarray(r.sum(axis=1)).ravel()).astype(np.float32)
    di = _inv_sqrt(np.asarray(r.sum(axis=0)).ravel()).astype(np.float32)
    return (sp.diags(du) @ r @ sp.diags(di)).tocsr()
