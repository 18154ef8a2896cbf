"""Sparse anchor-to-feature affinity (trust paper, Eq. 9-10): top-K cosine per anchor, computed in row chunks."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def topk_affinity(
    anchors: np.ndarray, projected: np.ndarray, k: int = 10, tau: float = 0.1, chunk: int | None = None
) -> sp.csr_matrix:
    """A_ij = exp(s_ij / tau) for the K largest s_ij = <anchor_i, z_j> of each row, diagonal forced in.

    Both inputs are L2-normalised here. The diagonal takes one of the K slots (it is always kept,
    Eq. 10's "diagonal included"), so every row has exactly min(K, N) entries. Never N x N dense.
    """
    a = torch.nn.functional.normalize(torch.as_tensor(np.asarray(anchors, dtype=np.float32)), dim=1)
    z = torch.nn.functional.normalize(torch.as_tensor(np.asarray(projected, dtype=np.float32)), dim=1)
    n = a.shape[0]
    k = min(k, z.shape[0])
    chunk = chunk or max(1, int(2**24 // max(z.shape[0], 1)))
    idx = np.empty((n, k), dtype=np.int64)
    val = np.empty((n, k), dtype=np.float64)
    zt = z.T.contiguous()
    for s in range(0, n, chunk):
        sims = a[s : s + chunk] @ zt  # Eq. 9, one row chunk
        rows = torch.arange(sims.shape[0])
        diag = sims[rows, rows + s].clone()
        sims[rows, rows + s] = float("inf")  # force the diagonal into the top-K
        v, i = torch.topk(sims, k, dim=1)
        v[:, 0] = diag  # the +inf entry sorts first: restore its real similarity
        idx[s : s + len(i)] = i.numpy()
        val[s : s + len(i)] = v.double().numpy()
    data = np.exp(val.ravel() / tau)  # Eq. 10 (float64: exp(1/tau) stays finite for tau >= 0.002)
    m = sp.csr_matrix((data, idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, z.shape[0]))
    m.sort_indices()
    return m
