"""Stress corruptions (trust paper, Sec. 3): modality misalignment and interaction noise.

Each function returns a NEW Dataset plus a record of exactly what changed (which rows were
permuted and where they came from, which edges were removed or added). Randomness is seeded
per modality / per operation, so adding a modality does not change another modality's draw.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from modalrec.data.dataset import Dataset
from modalrec.data.dataset import binary_csr as _binary
from modalrec.data.dataset import edge_pairs as _pairs
from modalrec.errors import DataError


def _rng(seed: int, tag: str) -> np.random.Generator:
    """An independent generator per (seed, tag)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**32, zlib.crc32(tag.encode())]))


def derangement(n: int, rng: np.random.Generator, max_tries: int = 64) -> np.ndarray:
    """A uniformly drawn permutation of 0..n-1 without fixed points (rejection sampling).

    For n == 1 no derangement exists: the identity is returned (the caller reports the fixed point).
    After ``max_tries`` rejections (probability ~e^-64) a random cyclic shift is used instead.
    """
    if n <= 1:
        return np.arange(n)
    for _ in range(max_tries):
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p
    return np.roll(np.arange(n), int(rng.integers(1, n)))


def permute_features(ds: Dataset, ratios: dict[str, float], seed: int = 0) -> tuple[Dataset, dict[str, Any]]:
    """Eq. 2: per modality, permute the feature rows of floor(eta_m |I|) uniformly drawn items among themselves.

    Record per modality: ``items`` (S_m), ``source`` (row ``items[k]`` now holds the old row
    ``source[k]``), ``n`` and ``fixed_points`` (rows that kept their own feature; 0 unless n == 1).
    """
    feats = dict(ds.features)
    record: dict[str, Any] = {}
    for m, eta in ratios.items():
        if m not in feats:
            raise DataError(
                f"stress.feature_permute names modality {m!r} but the dataset has {sorted(feats) or 'no features'}"
            )
        if not 0.0 <= eta <= 1.0:
            raise DataError(f"stress.feature_permute.{m}={eta} must lie in [0, 1]")
        n = int(np.floor(eta * ds.n_items + 1e-9))
        rng = _rng(seed, f"permute:{m}")
        items = np.sort(rng.choice(ds.n_items, size=n, replace=False)).astype(np.int64)
        perm = derangement(n, rng)
        source = items[perm]
        x = feats[m].copy()
        x[items] = feats[m][source]
        feats[m] = x
        record[m] = {
            "ratio": float(eta),
            "n": n,
            "items": items,
            "source": source,
            "fixed_points": int(np.sum(source == items)),
        }
    summary = {m: {"ratio": r["ratio"], "n": r["n"], "fixed_points": r["fixed_points"]} for m, r in record.items()}
    prov = _stress_provenance(ds, feature_permute=summary)
    return ds.replace(features=feats, provenance=prov), record


def sample_non_edges(
    n_users: int, n_items: int, forbidden: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct uniformly drawn (u, i) pairs whose key u*n_items+i is not in sorted ``forbidden``."""
    total = n_users * n_items
    if n > total - len(forbidden):
        raise DataError(f"cannot add {n} edges: only {total - len(forbidden)} user-item pairs are free")
    chosen = np.empty(0, dtype=np.int64)
    while len(chosen) < n:
        need = n - len(chosen)
        cand = rng.integers(0, total, size=int(need * 1.2) + 16, dtype=np.int64)
        cand = cand[~np.isin(cand, forbidden, assume_unique=False)]
        cand = cand[~np.isin(cand, chosen)]
        _, first = np.unique(cand, return_index=True)  # keep draw order, drop repeats
        cand = cand[np.sort(first)]
        chosen = np.concatenate([chosen, cand[:need]])
    return chosen // n_items, chosen % n_items


def corrupt_edges(ds: Dataset, eta: float, seed: int = 0) -> tuple[Dataset, dict[str, Any]]:
    """Interaction noise: eta < 0 deletes floor(|eta| |E_train|) training edges uniformly; eta > 0 adds as
    many uniformly drawn pairs that are neither training, validation nor test pairs (Sec. 3).

    The propagation graph follows the corrupted training edges (the noisy log IS the observed data).
    """
    u, i = _pairs(ds.train)
    n = int(np.floor(abs(eta) * len(u) + 1e-9))
    rng = _rng(seed, "edges")
    shape = (ds.n_users, ds.n_items)
    if eta < 0:
        drop = np.sort(rng.choice(len(u), size=n, replace=False))
        keep = np.ones(len(u), dtype=bool)
        keep[drop] = False
        train = _binary(u[keep], i[keep], shape)
        rec = {"eta": float(eta), "op": "delete", "n": n, "users": u[drop], "items": i[drop]}
    else:
        existing = [_pairs(m) for m in (ds.train, ds.valid, ds.test)]
        if ds.graph_edges is not None:
            existing.append(_pairs(ds.graph_edges))
        keys = np.unique(np.concatenate([a * ds.n_items + b for a, b in existing]))
        au, ai = sample_non_edges(ds.n_users, ds.n_items, keys, n, rng)
        train = _binary(np.concatenate([u, au]), np.concatenate([i, ai]), shape)
        rec = {"eta": float(eta), "op": "add", "n": n, "users": au, "items": ai}
    prov = _stress_provenance(ds, edges={"eta": float(eta), "op": rec["op"], "n": n})
    return ds.replace(train=train, graph_edges=None, provenance=prov), rec


def _stress_provenance(ds: Dataset, **entries: Any) -> dict[str, Any]:
    stress = dict(ds.provenance.get("stress", {}))
    stress.update(entries)
    return {**ds.provenance, "stress": stress}


def expand_all(ratios: dict[str, float], modalities: list[str]) -> dict[str, float]:
    """The key ``all`` sets every modality's ratio (explicit modality keys win), so one sweep axis
    ``stress.feature_permute.all`` corrupts image/text or text/audio alike; each modality still draws
    its own subset and permutation (Sec. 3: "image and text corruptions are applied independently")."""
    out = {m: ratios["all"] for m in modalities} if "all" in ratios else {}
    out.update({m: r for m, r in ratios.items() if m != "all"})
    return out


def apply_stress(
    ds: Dataset, feature_permute: dict[str, float] | None = None, edges: float = 0.0, seed: int = 0
) -> tuple[Dataset, dict[str, Any]]:
    """Both corruptions in a fixed order (features, then edges); the record has keys ``features``/``edges``."""
    record: dict[str, Any] = {"seed": seed, "features": {}, "edges": None}
    ratios = expand_all(feature_permute or {}, ds.modalities)
    ratios = {m: r for m, r in ratios.items() if r > 0}
    if ratios:
        ds, record["features"] = permute_features(ds, ratios, seed)
    if edges:
        ds, record["edges"] = corrupt_edges(ds, edges, seed)
    return ds, record


def corrupt(
    data: Dataset | str | Path,
    permute: dict[str, float] | None = None,
    edges: float = 0.0,
    seed: int = 0,
    out: str | Path | None = None,
    features: dict[str, str] | None = None,
    inter: str | None = None,
) -> tuple[Dataset, dict[str, Any]]:
    """Corrupt a dataset (a Dataset, a preset or an MMRec folder); with ``out``, write the MMRec layout plus
    ``out/corruption.json`` and return (corrupted Dataset, record)."""
    if not isinstance(data, Dataset):
        from modalrec.api import load_dataset

        data = load_dataset(data, features, inter)
    ds, record = apply_stress(data, permute, edges, seed)
    if out is not None:
        from modalrec.data.mmrec import write_mmrec
        from modalrec.io import write_json

        write_mmrec(ds, out)
        write_json(Path(out) / "corruption.json", {"source": str(data.provenance.get("source", "")), **record})
    return ds, record
