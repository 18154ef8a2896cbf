"""Interaction filters: rating threshold, deduplication and the iterative k-core (all vectorised)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modalrec.errors import DataError


def rating_threshold(df: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Keep rows with ``rating >= threshold`` (None keeps all: MMRec treats every rating as positive)."""
    if threshold is None:
        return df
    if "rating" not in df.columns:
        raise DataError(f"rating_threshold={threshold} needs a rating column; map interactions.rating in the spec")
    return df[df["rating"].to_numpy() >= threshold]


def dedupe(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): the earliest by timestamp when there is one, else the first in the file."""
    if len(df) == 0:
        return df
    u, _ = pd.factorize(df["user"])
    i, items = pd.factorize(df["item"])
    key = u.astype(np.int64) * max(1, len(items)) + i
    order = np.argsort(df["timestamp"].to_numpy(), kind="stable") if "timestamp" in df.columns else np.arange(len(df))
    _, first = np.unique(key[order], return_index=True)
    return df.iloc[np.sort(order[first])]


def kcore(df: pd.DataFrame, min_user: int = 5, min_item: int = 5) -> tuple[pd.DataFrame, int]:
    """Iterative k-core: drop users/items with too few rows until stable; returns (frame, passes)."""
    if min_user <= 1 and min_item <= 1:
        return df, 0
    u, _ = pd.factorize(df["user"])
    i, _ = pd.factorize(df["item"])
    keep = np.ones(len(df), dtype=bool)
    passes = 0
    while True:
        passes += 1
        du = np.bincount(u[keep], minlength=u.max() + 1 if len(u) else 0)
        di = np.bincount(i[keep], minlength=i.max() + 1 if len(i) else 0)
        new = keep & (du[u] >= min_user) & (di[i] >= min_item)
        if new.sum() == keep.sum():
            break
        keep = new
    return df[keep], passes
