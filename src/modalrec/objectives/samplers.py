"""Vectorised negative sampling: uniform over items a user has not interacted with in training."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class NegativeSampler:
    """Draws items outside each user's training positives, all at once with numpy (no per-row loop)."""

    def __init__(self, positives: sp.csr_matrix):
        coo = positives.tocoo()
        self.n_items = positives.shape[1]
        self.keys = np.sort(coo.row.astype(np.int64) * self.n_items + coo.col)
        deg = np.diff(positives.tocsr().indptr)
        if len(deg) and deg.max() >= self.n_items:
            raise ValueError("a user has interacted with every item; no negatives can be drawn")

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if len(self.keys) == 0:
            return np.zeros(np.shape(items), dtype=bool)
        q = users.astype(np.int64) * self.n_items + items
        pos = np.minimum(np.searchsorted(self.keys, q), len(self.keys) - 1)
        return self.keys[pos] == q

    def sample(self, users: np.ndarray, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """Negatives of shape [len(users)] (n=1) or [len(users), n], redrawing only collisions."""
        shape = (len(users),) if n == 1 else (len(users), n)
        u = users if n == 1 else np.repeat(users[:, None], n, axis=1)
        out = rng.integers(0, self.n_items, size=shape)
        bad = self.is_positive(u, out)
        while bad.any():
            out[bad] = rng.integers(0, self.n_items, size=int(bad.sum()))
            bad[bad] = self.is_positive(u[bad], out[bad])
        return out
