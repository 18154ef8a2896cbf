"""Chunked cosine kNN over item features (never an N x N dense matrix), cached by content hash."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from modalrec.io import cache_dir, hash_arrays


def knn_graph(x: np.ndarray | torch.Tensor, k: int, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours of every row (self included): ``(indices [N, k], sims [N, k])``."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float()
    xt = torch.nn.functional.normalize(xt.detach(), dim=1)
    n = xt.shape[0]
    k = min(k, n)
    chunk = chunk or max(1, int(2**25 // max(n, 1)))
    idx = np.empty((n, k), dtype=np.int64)
    val = np.empty((n, k), dtype=np.float32)
    for s in range(0, n, chunk):
        sims = xt[s : s + chunk] @ xt.T
        # self first: guarantees the item itself is kept despite ties
        sims[torch.arange(sims.shape[0]), torch.arange(s, s + sims.shape[0])] = float("inf")
        v, i = torch.topk(sims, k, dim=1)
        v[:, 0] = 1.0
        idx[s : s + len(i)] = i.numpy()
        val[s : s + len(i)] = v.numpy()
    return idx, val


def knn_adjacency(
    x: np.ndarray, k: int, weighted: bool = False, norm: str = "sym", cache: bool = True
) -> sp.csr_matrix:
    """Sparse kNN graph, binary or cosine-weighted, normalised D^-1/2 A D^-1/2 (row degrees) or by rows.

    Cached on disk under a hash of the feature bytes and parameters.
    """
    key = hash_arrays("knn", np.asarray(x, dtype=np.float32), k, weighted, norm)
    path = cache_dir() / f"knn-{key}.npz"
    if cache and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    idx, val = knn_graph(x, k)
    n = idx.shape[0]
    data = val.ravel() if weighted else np.ones(idx.size, dtype=np.float32)
    a = sp.csr_matrix((data, (np.repeat(np.arange(n), idx.shape[1]), idx.ravel())), shape=(n, n))
    deg = np.asarray(a.sum(axis=1)).ravel()
    if norm == "sym":
        d = np.zeros_like(deg)
        d[deg > 0] = deg[deg > 0] ** -0.5
        a = sp.diags(d.astype(np.float32)) @ a @ sp.diags(d.astype(np.float32))
    elif norm == "row":
        d = np.zeros_like(deg)
        d[deg > 0] = 1.0 / deg[deg > 0]
        a = sp.diags(d.astype(np.float32)) @ a
    a = sp.csr_matrix(a, dtype=np.float32)
    a.sort_indices()
    if cache:
        from modalrec.io import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, data=a.data, indices=a.indices, indptr=a.indptr, shape=np.array(a.shape))
    return a
