"""The immutable Dataset: users x items interactions per split plus per-item modality features."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from modalrec.io import hash_arrays


def edge_pairs(m: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of a sparse matrix's nonzeros as int64 arrays."""
    coo = m.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64)


def binary_csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """A binary csr matrix from (row, col) pairs (duplicates collapse to 1)."""
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    m.sort_indices()
    return m


@dataclass(frozen=True)
class Dataset:
    """Interactions and features; corruptions and rectification return a new Dataset.

    ``train`` holds the supervision edges (BPR positives). ``graph`` is the propagation graph
    used by graph models (defaults to ``train``); ``mask`` the positives filtered out at
    evaluation (defaults to ``train``). Edge-editing studies set them apart.
    """

    name: str
    n_users: int
    n_items: int
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    features: dict[str, np.ndarray] = field(default_factory=dict)
    graph_edges: sp.csr_matrix | None = None
    mask_edges: sp.csr_matrix | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_pairs(
        cls,
        name: str,
        n_users: int,
        n_items: int,
        splits: dict[str, tuple[np.ndarray, np.ndarray]],
        features: dict[str, np.ndarray] | None = None,
        **kw: Any,
    ) -> Dataset:
        """Build from (users, items) arrays per split name ``train``/``valid``/``test``."""
        shape = (n_users, n_items)
        mats = {k: binary_csr(np.asarray(u), np.asarray(i), shape) for k, (u, i) in splits.items()}
        feats = {m: np.ascontiguousarray(f, dtype=np.float32) for m, f in (features or {}).items()}
        return cls(name, n_users, n_items, mats["train"], mats["valid"], mats["test"], feats, **kw)

    # -- views -------------------------------------------------------------------------------
    @property
    def graph(self) -> sp.csr_matrix:
        """Edges used for message passing."""
        return self.train if self.graph_edges is None else self.graph_edges

    @property
    def mask(self) -> sp.csr_matrix:
        """Positives excluded from ranking at evaluation (the original training positives)."""
        return self.train if self.mask_edges is None else self.mask_edges

    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    def replace(self, **changes: Any) -> Dataset:
        """A copy with some fields replaced (the Dataset itself never changes)."""
        return dataclasses.replace(self, **changes)

    def split(self, name: str) -> sp.csr_matrix:
        if name not in ("train", "valid", "test"):
            raise KeyError(name)
        return getattr(self, name)

    def fingerprint(self) -> str:
        """A content hash of interactions and features (for caches and run records)."""
        parts: list[Any] = [self.n_users, self.n_items, self.train, self.valid, self.test, self.graph, self.mask]
        for m in sorted(self.features):
            parts += [m, self.features[m]]
        return hash_arrays(*parts)

    def stats(self) -> dict[str, Any]:
        """Summary numbers as printed by ``modalrec data info``."""
        n = {s: int(self.split(s).nnz) for s in ("train", "valid", "test")}
        total = sum(n.values())
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": total,
            "train": n["train"],
            "valid": n["valid"],
            "test": n["test"],
            "density": total / max(1, self.n_users * self.n_items),
            "features": {m: list(f.shape[1:]) for m, f in self.features.items()},
            "graph_differs_from_train": self.graph_edges is not None,
        }

    def __repr__(self) -> str:
        s = self.stats()
        feats = ", ".join(f"{m}:{d[0] if d else 1}" for m, d in s["features"].items())
        return (
            f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"train/valid/test={s['train']}/{s['valid']}/{s['test']}, features=[{feats}])"
        )
