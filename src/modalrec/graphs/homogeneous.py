"""Homogeneous (item-item / user-user) graphs mixing co-interaction overlap and modality cosine (BR-MRS Eq. 1).

e_ij = alpha * overlap(N_i, N_j) + (1 - alpha) * sum_m beta_m * cos(x_i^m, x_j^m), top-k per row.
overlap = Jaccard |N_i & N_j| / |N_i | N_j| of the neighbour sets, from the sparse co-occurrence
R R^T computed one row chunk at a time; cosines are computed chunk by chunk too, so no N x N
dense matrix is ever held. The result (self-loops excluded, non-positive weights dropped) is
normalised D^-1/2 A D^-1/2 with row degrees (as FREEDOM's kNN graph) and cached by content hash.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from modalrec.io import atomic_path, cache_dir, hash_arrays


def _unit_rows(x: np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return torch.nn.functional.normalize(t, dim=1)


def interest_vectors(r: sp.csr_matrix, item_features: np.ndarray) -> np.ndarray:
    """User interest vectors: mean feature of each user's interacted items (zeros for users without any)."""
    r = sp.csr_matrix(r, dtype=np.float32)
    deg = np.asarray(r.sum(axis=1)).ravel()
    inv = np.zeros_like(deg)
    inv[deg > 0] = 1.0 / deg[deg > 0]
    return np.asarray(sp.diags(inv) @ (r @ np.asarray(item_features, dtype=np.float32)), dtype=np.float32)


def homogeneous_topk(
    r: sp.csr_matrix,
    features: dict[str, np.ndarray],
    alpha: float,
    betas: dict[str, float],
    k: int,
    chunk: int | None = None,
) -> sp.csr_matrix:
    """Top-k raw edge weights of Eq. 1 between the ROWS of ``r`` (nodes x neighbours), unnormalised."""
    r = sp.csr_matrix(r, dtype=np.float32)
    r.data[:] = 1.0
    n = r.shape[0]
    k = min(k, max(n - 1, 1))
    deg = torch.as_tensor(np.asarray(r.sum(axis=1)).ravel(), dtype=torch.float32)
    rt = r.T.tocsc()
    unit = {m: _unit_rows(x) for m, x in features.items() if betas.get(m, 0.0)}
    chunk = chunk or max(1, int(2**24 // max(n, 1)))
    rows, cols, vals = [], [], []
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        w = torch.zeros(e - s, n)
        if alpha:
            co = torch.as_tensor((r[s:e] @ rt).toarray(), dtype=torch.float32)  # |N_i & N_j|
            union = deg[s:e, None] + deg[None, :] - co
            w += alpha * torch.where(union > 0, co / union.clamp_min(1e-12), torch.zeros(()))
        for m, x in unit.items():
            w += (1.0 - alpha) * betas[m] * (x[s:e] @ x.T)
        w[torch.arange(e - s), torch.arange(s, e)] = float("-inf")  # no self-loops
        v, i = torch.topk(w, k, dim=1)
        keep = v > 0
        rows.append(np.repeat(np.arange(s, e), k)[keep.numpy().ravel()])
        cols.append(i[keep].numpy())
        vals.append(v[keep].numpy())
    data = np.concatenate(vals).astype(np.float32) if vals else np.zeros(0, np.float32)
    return sp.csr_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def sym_normalise(a: sp.csr_matrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 with row degrees."""
    deg = np.asarray(a.sum(axis=1)).ravel()
    d = np.zeros_like(deg)
    d[deg > 0] = deg[deg > 0] ** -0.5
    out = sp.csr_matrix(sp.diags(d.astype(np.float32)) @ a @ sp.diags(d.astype(np.float32)), dtype=np.float32)
    out.sort_indices()
    return out


def homogeneous_graph(
    r: sp.csr_matrix,
    features: dict[str, np.ndarray],
    alpha: float,
    betas: dict[str, float],
    k: int,
    cache: bool = True,
) -> sp.csr_matrix:
    """Normalised top-k Eq. 1 graph over the rows of ``r``; cached on disk by a hash of all inputs."""
    r = sp.csr_matrix(r)
    names = sorted(features)
    key = hash_arrays(
        "homogeneous-v1",
        r,
        *[np.asarray(features[m], dtype=np.float32) for m in names],
        names,
        alpha,
        [betas.get(m, 0.0) for m in names],
        k,
    )
    path = cache_dir() / f"homo-{key}.npz"
    if cache and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    a = sym_normalise(homogeneous_topk(r, features, alpha, betas, k))
    if cache:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, data=a.data, indices=a.indices, indptr=a.indptr, shape=np.array(a.shape))
    return a
