"""Train/valid/test splits: per-user random (MMRec's rule, seeded), chronological leave-one-out, global time.

All return an ``x_label`` per row (0 train, 1 valid, 2 test), computed with array operations only.
Rows must already be sorted by ``userID`` then ``itemID`` (``reindex`` does this), so a split
depends only on the set of interactions and the seed, never on the raw file's row order.
"""

from __future__ import annotations

import numpy as np

from modalrec.data.synthetic import community_split
from modalrec.errors import DataError

COMMUNITY_RATIOS = (0.8, 0.1, 0.1)


def per_user_counts(n: np.ndarray, ratios: tuple[float, float, float] = COMMUNITY_RATIOS) -> np.ndarray:
    """[n_users, 3] train/valid/test counts; users with < 3 interactions keep them all in train."""
    if tuple(ratios) == COMMUNITY_RATIOS:
        counts = community_split(n, np.random.default_rng(0))  # the rule draws no randomness
    else:
        held = ratios[1] + ratios[2]
        vt = np.where(n < 10, 2, np.floor(held * n + 1e-9).astype(np.int64))
        valid = np.where(n < 10, 1, np.floor(vt * (ratios[1] / held if held else 0) + 1e-9).astype(np.int64))
        counts = np.stack([n - vt, valid, vt - valid], axis=1)
    small = n < 3
    counts[small] = np.stack([n[small], np.zeros_like(n[small]), np.zeros_like(n[small])], axis=1)
    return counts


def _positional(users: np.ndarray, order: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Label rows by their rank within the user, in ``order``: first train, then valid, then test."""
    u = users[order]
    deg = np.bincount(users, minlength=len(counts))
    starts = np.concatenate([[0], np.cumsum(deg)[:-1]])
    pos = np.arange(len(u)) - starts[u]
    lab = np.where(pos < counts[u, 0], 0, np.where(pos < counts[u, 0] + counts[u, 1], 1, 2))
    label = np.empty(len(users), dtype=np.int64)
    label[order] = lab
    return label


def random_split(users: np.ndarray, n_users: int, seed: int, ratios=COMMUNITY_RATIOS) -> np.ndarray:
    """Per-user random split with MMRec's rule (n < 10 -> 1 valid + 1 test), seeded (the notebook was not)."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(users)), users))
    counts = per_user_counts(np.bincount(users, minlength=n_users), ratios)
    return _positional(users, order, counts)


def leave_one_out(users: np.ndarray, items: np.ndarray, ts: np.ndarray, n_users: int) -> np.ndarray:
    """Chronological leave-one-out: each user's last row -> test, second-last -> valid (ties by itemID)."""
    order = np.lexsort((items, ts, users))
    n = np.bincount(users, minlength=n_users)
    counts = np.stack([n - 2, np.ones_like(n), np.ones_like(n)], axis=1)
    small = n < 3
    counts[small] = np.stack([n[small], 0 * n[small], 0 * n[small]], axis=1)
    return _positional(users, order, counts)


def global_time(ts: np.ndarray, ratios=COMMUNITY_RATIOS) -> np.ndarray:
    """Global temporal split at timestamp quantiles: t < q(r0) train, < q(r0 + r1) valid, else test."""
    if len(ts) == 0:
        raise DataError("no interactions to split")
    t1, t2 = np.quantile(ts, [ratios[0], ratios[0] + ratios[1]])
    return np.where(ts < t1, 0, np.where(ts < t2, 1, 2)).astype(np.int64)
