"""Selection and aggregation: best config per group chosen on VALIDATION only, mean ± std over seeds, Δ%.

The toolbox we replace picks the "best" hyper-parameters on the test split; here the selection step
receives a frame that holds validation columns only, and test columns are joined afterwards.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from modalrec.experiments.store import Store, dataset_label

MISSING = object()


def lookup(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """``config["a"]["b"]`` for ``"a.b"`` (``default`` when absent)."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


@cache
def _defaults() -> dict[str, Any]:
    from modalrec.config.schema import RunConfig

    return RunConfig().model_dump(mode="json")


def _off(v: Any) -> bool:
    return v is None or v is False or v == 0 or v in ("", "none")


def method_label(config: dict[str, Any], keys: list[str]) -> str:
    """Name a method from the values of ``keys`` joined with "+", leaving out switched-off parts.

    Strings stand for themselves (``lightgcn``), numbers become ``name=value`` (``chns_weight=1``), a true
    boolean its name (``rectify`` for ``rectify.enabled``). Off values (None, False, 0) are dropped, and
    so are later string keys left at their default: ``[model, objective]`` gives ``lightgcn`` for the
    default BPR objective and ``lightgcn+brmrs`` otherwise. Nothing left gives ``base``.
    """
    parts = []
    for i, k in enumerate(keys):
        v = lookup(config, k)
        if _off(v) or (i > 0 and isinstance(v, str) and v == lookup(_defaults(), k, MISSING)):
            continue
        last = k.split(".")[-1]
        if v is True:
            parts.append(k.split(".")[-2] if last == "enabled" and "." in k else last)
        elif isinstance(v, int | float):
            parts.append(f"{last}={v:g}")
        else:
            parts.append(str(v))
    return "+".join(parts) or "base"


def group_id(config: dict[str, Any]) -> str:
    """An id shared by trials that differ only in their seed (the unit of selection)."""
    import hashlib

    c = {k: v for k, v in config.items() if k not in ("seed", "threads")}
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:12]


def trials_frame(
    store: Store, method: list[str] | None = None, status: str | None = "done", current_only: bool = True
) -> pd.DataFrame:
    """One row per trial: hash, status, method, dataset, seed, group, swept keys, valid.* and test.* metrics."""
    meta = store.meta()
    swept_keys = list(meta.get("swept_keys") or [])
    method = method or ["model"]
    rows = []
    for r in store.rows(status, current_only):
        cfg = r["config"]
        row: dict[str, Any] = {
            "hash": r["hash"],
            "status": r["status"],
            "method": method_label(cfg, method),
            "dataset": dataset_label(lookup(cfg, "data.source", "")),
            "seed": cfg.get("seed"),
            "group": group_id(cfg),
        }
        for k in swept_keys:
            if k not in row:
                v = lookup(cfg, k)
                row[k] = json.dumps(v) if isinstance(v, list | dict) else v
        for split in ("valid", "test"):
            for m, v in (r[split] or {}).items():
                row[f"{split}.{m}"] = v
        row.update(best_epoch=r["best_epoch"], seconds=r["seconds"], peak_rss_mb=r["peak_rss_mb"], error=r["error"])
        rows.append(row)
    return pd.DataFrame(rows)


def select_best(df: pd.DataFrame, metric: str, by: list[str] | tuple[str, ...] = ("method", "dataset")) -> pd.DataFrame:
    """For each ``by`` group, the config (seeds pooled) with the highest mean VALIDATION ``metric``.

    Returns one row per group: the ``by`` values, ``group``, ``n_seeds``, and for every metric column
    its mean and ``<col>:std`` over seeds (sample std; NaN with one seed). Ties keep the first config.
    """
    by = list(by)
    vcol = f"valid.{metric}"
    if df.empty or vcol not in df:
        return pd.DataFrame(columns=[*by, "group", "n_seeds"])
    # selection: only validation enters here
    sel = df[[*by, "group", vcol]]
    means = sel.groupby([*by, "group"], sort=False, dropna=False)[vcol].mean().reset_index()
    best = means.loc[means.groupby(by, sort=False, dropna=False)[vcol].idxmax()]
    # aggregation: now join every metric (valid and test) of the chosen configs
    mcols = [c for c in df.columns if c.startswith(("valid.", "test."))]
    chosen = df.merge(best[[*by, "group"]], on=[*by, "group"])
    agg = chosen.groupby([*by, "group"], sort=False, dropna=False)
    out = agg[mcols].mean()
    std = agg[mcols].std(ddof=1).add_suffix(":std")
    out = pd.concat([out, std], axis=1)
    out.insert(0, "n_seeds", agg.size())
    return out.reset_index()


def delta_pct(value: float, base: float) -> float:
    """Relative improvement in percent: 100 * (value - base) / base (NaN when base is 0)."""
    return float("nan") if not base or np.isnan(base) else 100.0 * (value - base) / base


def with_deltas(best: pd.DataFrame, baseline: str, cols: list[str]) -> pd.DataFrame:
    """Add ``<col>:delta%`` columns against the baseline method on the same dataset."""
    out = best.copy()
    base = best[best["method"] == baseline].set_index("dataset")
    for c in cols:
        out[f"{c}:delta%"] = [
            delta_pct(v, base[c].get(d, float("nan"))) if d in base.index else float("nan")
            for v, d in zip(out[c], out["dataset"])
        ]
    return out
