"""Stable reindexing of raw ids to contiguous 0-based ``userID`` / ``itemID``, and the mapping files.

``sorted`` (default): ids in sorted order (numerically when every id is an integer, else as text),
so the same set of ids always gets the same indices, whatever the row order of the raw file.
``first_seen``: order of first appearance in the filtered table, as MMRec's ``0rating2inter`` did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modalrec.io import atomic_path


def ordered_ids(raw: pd.Series, how: str = "sorted") -> np.ndarray:
    """The distinct raw ids in index order (row k of the result gets index k)."""
    uniq = pd.unique(raw.astype(str))
    if how == "first_seen":
        return np.asarray(uniq, dtype=object)
    text = np.asarray(uniq, dtype=str)
    num = pd.to_numeric(pd.Series(uniq), errors="coerce").to_numpy(dtype=np.float64)
    if np.isfinite(num).all() and (num == np.floor(num)).all():
        order = np.lexsort((text, num))  # numeric order; ties ("7" vs "07") broken by text
    else:
        order = np.argsort(text, kind="stable")
    return np.asarray(uniq, dtype=object)[order]


def reindex(df: pd.DataFrame, how: str = "sorted") -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Add ``userID``/``itemID`` columns; returns (frame sorted by userID then itemID, user ids, item ids)."""
    users = ordered_ids(df["user"], how)
    items = ordered_ids(df["item"], how)
    out = df.copy()
    out["userID"] = pd.Index(users).get_indexer(df["user"].astype(str)).astype(np.int64)
    out["itemID"] = pd.Index(items).get_indexer(df["item"].astype(str)).astype(np.int64)
    out = out.sort_values(["userID", "itemID"], kind="stable").reset_index(drop=True)
    return out, users, items


def write_mappings(out: Path, users: np.ndarray, items: np.ndarray) -> None:
    """Write ``u_id_mapping.csv`` (user_id, userID) and ``i_id_mapping.csv`` (item_id, itemID), tab-separated."""
    for fname, raw, col, idx in (
        ("u_id_mapping.csv", users, "user_id", "userID"),
        ("i_id_mapping.csv", items, "item_id", "itemID"),
    ):
        frame = pd.DataFrame({col: raw, idx: np.arange(len(raw), dtype=np.int64)})
        with atomic_path(out / fname) as tmp:
            frame.to_csv(tmp, sep="\t", index=False)
