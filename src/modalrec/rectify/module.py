"""Modality-level Rectification (trust paper, Sec. 4.2): anchors -> robust projection -> sparse affinity ->
Sinkhorn matching -> re-aggregation with a diagonal prior mix. Output features keep their shapes."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from modalrec.config.schema import RectifyConfig
from modalrec.data.dataset import Dataset
from modalrec.errors import DataError
from modalrec.io import cache_dir, hash_arrays, load_npy, save_npy
from modalrec.rectify.affinity import topk_affinity
from modalrec.rectify.anchors import train_anchors
from modalrec.rectify.projection import train_projection
from modalrec.rectify.sinkhorn import row_normalize, sinkhorn

log = logging.getLogger("modalrec.rectify")

DEFAULT_RHO = 0.75  # keep ratio when the misalignment rate is unknown


def default_rho(eta: float | None) -> float:
    """rho = eta_m + 0.05 when the injected misalignment eta_m is known (paper Sec. 6.1.4), else 0.75."""
    return DEFAULT_RHO if eta is None else float(min(1.0, eta + 0.05))


def known_eta(ds: Dataset) -> dict[str, float]:
    """Misalignment ratios recorded by ``modalrec.corrupt`` in the dataset's provenance (if any)."""
    fp = ds.provenance.get("stress", {}).get("feature_permute", {})
    return {m: float(v["ratio"] if isinstance(v, dict) else v) for m, v in fp.items()}


def mix(features: np.ndarray, p: sp.csr_matrix, lam: float) -> np.ndarray:
    """Eq. 13-14: lambda * e + (1 - lambda) * P e, in float32 and never densifying P."""
    agg = np.asarray(p.astype(np.float32) @ features, dtype=np.float32)  # Eq. 13
    return (lam * features + (1.0 - lam) * agg).astype(np.float32)  # Eq. 14


def rectify_modality(
    features: np.ndarray, anchors: np.ndarray, cfg: RectifyConfig, rho: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Rectify one modality's [N, d_m] features against [N, d] anchors; returns (features, report)."""
    t0 = time.perf_counter()
    z, proj = train_projection(
        features,
        anchors,
        None if cfg.no_small_loss else rho,
        cfg.proj_epochs,
        cfg.proj_batch,
        cfg.proj_lr,
        cfg.seed,
        cfg.proj_weight_decay,
    )
    t1 = time.perf_counter()
    a = topk_affinity(anchors, z, cfg.k, cfg.tau)  # Eq. 9-10
    t2 = time.perf_counter()
    if cfg.no_sinkhorn:
        p, sk = row_normalize(a)
    else:
        p, sk = sinkhorn(a, cfg.sinkhorn_eps, cfg.sinkhorn_tol, cfg.sinkhorn_iters)  # Eq. 11-12
    t3 = time.perf_counter()
    out = mix(np.asarray(features, dtype=np.float32), p, cfg.lam)
    t4 = time.perf_counter()
    report = {
        "rho": None if cfg.no_small_loss else rho,
        "projection": proj,
        "sinkhorn": sk,
        "nnz": int(a.nnz),
        "mean_diagonal_weight": float(p.diagonal().mean()),
        "seconds": {
            "projection": t1 - t0,
            "affinity": t2 - t1,
            "sinkhorn": t3 - t2,
            "aggregation": t4 - t3,
        },
    }
    return out, report


def _params(cfg: RectifyConfig) -> dict[str, Any]:
    return cfg.model_dump(exclude={"enabled", "cache", "modalities"})


def rectify_dataset(
    ds: Dataset, cfg: RectifyConfig | None = None, eta: dict[str, float] | None = None, threads: int | None = None
) -> tuple[Dataset, dict[str, Any]]:
    """A new Dataset whose features are rectified (same shapes), plus a report (parameters, Sinkhorn
    residuals, timings). rho: ``cfg.rho`` if set, else eta_m + 0.05 from ``eta`` / the provenance, else 0.75."""
    cfg = cfg or RectifyConfig(enabled=True)
    mods = cfg.modalities or ds.modalities
    missing = [m for m in mods if m not in ds.features]
    if missing:
        raise DataError(f"rectify.modalities names {missing} but the dataset has {ds.modalities}")
    if not mods:
        raise DataError(f"dataset {ds.name!r} has no modality features to rectify")
    eta = {**known_eta(ds), **(eta or {})}
    if threads:
        import torch

        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    anchors = train_anchors(
        ds, cfg.anchor_dim, cfg.anchor_layers, cfg.anchor_epochs, cfg.seed, threads, cfg.cache, cfg.anchor_lr
    )
    t_anchor = time.perf_counter() - t0
    feats = dict(ds.features)
    report: dict[str, Any] = {"parameters": _params(cfg), "anchor_seconds": t_anchor, "modalities": {}}
    for m in mods:
        rho = cfg.rho if cfg.rho is not None else default_rho(eta.get(m))
        key = hash_arrays("rectified", feats[m], anchors, _params(cfg), rho)
        path: Path = cache_dir() / f"rect-{key}.npy"
        rep_path = path.with_suffix(".json")
        if cfg.cache and path.exists() and rep_path.exists():
            import json

            feats[m] = load_npy(path)
            report["modalities"][m] = {**json.loads(rep_path.read_text()), "cached": True}
            continue
        out, rep = rectify_modality(feats[m], anchors, cfg, rho)
        log.info(
            "rectified %s: Sinkhorn error %.2e after %d iterations",
            m,
            rep["sinkhorn"]["error"],
            rep["sinkhorn"]["iterations"],
        )
        feats[m] = out
        report["modalities"][m] = rep
        if cfg.cache:
            from modalrec.io import write_json

            save_npy(path, out)
            write_json(rep_path, rep)
    prov = {**ds.provenance, "rectify": {"parameters": _params(cfg), "modalities": list(mods)}}
    return ds.replace(features=feats, provenance=prov), report


def rectify(
    data: Dataset | str | Path,
    out: str | Path | None = None,
    features: dict[str, str] | None = None,
    inter: str | None = None,
    threads: int | None = None,
    **params: Any,
) -> tuple[Dataset, dict[str, Any]]:
    """Rectify a Dataset, preset or MMRec folder (``params``: RectifyConfig fields, e.g. lam=0.5, tau=0.1);
    with ``out``, write the MMRec layout with same-shape features plus ``out/rectify.json``."""
    if not isinstance(data, Dataset):
        from modalrec.api import load_dataset

        src = Path(str(data))
        ds = load_dataset(data, features, inter)
        eta = _eta_from_folder(src)
    else:
        ds, eta = data, {}
    cfg = RectifyConfig(enabled=True, **params)
    t0 = time.perf_counter()
    new, report = rectify_dataset(ds, cfg, eta, threads=threads)
    report["total_seconds"] = time.perf_counter() - t0
    report["known_eta"] = {**known_eta(ds), **eta}
    if out is not None:
        from modalrec.data.mmrec import write_mmrec
        from modalrec.io import write_json

        write_mmrec(new, out)
        write_json(Path(out) / "rectify.json", {"source": str(ds.provenance.get("source", "")), **report})
    return new, report


def _eta_from_folder(folder: Path) -> dict[str, float]:
    """eta_m per modality from ``corruption.json`` written by ``modalrec corrupt`` (empty when absent)."""
    f = folder / "corruption.json"
    if not f.is_file():
        return {}
    import json

    rec = json.loads(f.read_text())
    return {m: float(r["ratio"]) for m, r in (rec.get("features") or {}).items()}
