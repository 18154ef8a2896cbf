"""Feature checks and optional normalisation (features are used as given unless asked)."""

from __future__ import annotations

import logging

import numpy as np

from modalrec.data.dataset import Dataset

log = logging.getLogger("modalrec.data")

LARGE_NORM = 100.0


def warn_feature_scale(features: dict[str, np.ndarray], where: str) -> None:
    """Warn when raw features are on a scale that makes linear projections unstable."""
    for m, f in features.items():
        norm = float(np.linalg.norm(f, axis=1).mean()) if len(f) else 0.0
        if norm > LARGE_NORM:
            log.warning(
                "%s: %s features have mean L2 norm %.0f; models that project raw features (e.g. VBPR) may train "
                "poorly; consider data.normalize=l2 or zscore",
                where,
                m,
                norm,
            )


def normalize_features(ds: Dataset, how: str) -> Dataset:
    """``l2``: unit rows; ``zscore``: per-column standardisation; ``none``: unchanged."""
    if how == "none" or not ds.features:
        return ds
    out = {}
    for m, f in ds.features.items():
        if how == "l2":
            out[m] = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        elif how == "zscore":
            out[m] = (f - f.mean(0)) / np.maximum(f.std(0), 1e-12)
        else:
            raise ValueError(f"unknown normalisation {how!r}")
        out[m] = np.ascontiguousarray(out[m], dtype=np.float32)
    return ds.replace(features=out, provenance={**ds.provenance, "normalize": how})
