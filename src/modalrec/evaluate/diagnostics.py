"""Per-branch diagnostics (BR-MRS Sec. 3.6-3.7): branch metrics, the six-way hit taxonomy, per-reason recall.

For each test user and each branch, "hit" means at least one of the user's test items is in that
branch's top-K (HitRate@K per user; the paper's leave-one-out has one test item, where both agree).
With two modality branches (a, b) and the fused branch f, users fall into six disjoint cases:
redundant (a, b, f all hit), fusion_degraded (a and b hit, f misses), <a>_unique (a hits, b
misses, any f), <b>_unique (a misses, b hits, any f), synergy (only f hits), all_fail (none).
On synthetic data, each test positive carries its planted reason; recall per reason is the share
of that reason's test pairs found in the user's top-K (micro-averaged over pairs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modalrec.data.dataset import Dataset
from modalrec.evaluate.ranking import RankingResult

CASES = ("redundant", "fusion_degraded", "a_unique", "b_unique", "synergy", "all_fail")


def user_hits(res: RankingResult, k: int, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(users, hit@K per user) of one branch's ranking."""
    return res.users[split], res.hits[split][:, :k].any(axis=1)


def taxonomy_codes(hit_a: np.ndarray, hit_b: np.ndarray, hit_f: np.ndarray) -> np.ndarray:
    """Index into CASES for every user (vectorised; the six cases partition all users)."""
    code = np.full(len(hit_a), 5, dtype=np.int64)  # all_fail
    code[~hit_a & ~hit_b & hit_f] = 4  # synergy
    code[~hit_a & hit_b] = 3
    code[hit_a & ~hit_b] = 2
    code[hit_a & hit_b & ~hit_f] = 1
    code[hit_a & hit_b & hit_f] = 0
    return code


def taxonomy(hit_a: np.ndarray, hit_b: np.ndarray, hit_f: np.ndarray, a: str, b: str) -> dict[str, dict[str, float]]:
    """Counts and shares of the six cases, named with the two modality names."""
    counts = np.bincount(taxonomy_codes(hit_a, hit_b, hit_f), minlength=len(CASES))
    n = max(1, int(counts.sum()))
    names = [c.replace("a_", f"{a}_").replace("b_", f"{b}_") if c[:2] in ("a_", "b_") else c for c in CASES]
    return {nm: {"count": int(c), "share": float(c) / n} for nm, c in zip(names, counts)}


def reason_recall(res: RankingResult, ds: Dataset, k: int) -> dict[str, dict[str, float]] | None:
    """Recall@K per planted reason (synthetic data only; None otherwise). Needs ``keep_topk``."""
    ex = ds.extras
    if "reason_code" not in ex or "test" not in res.topk:
        return None
    names = list(ds.provenance.get("reason_names", []))
    row = np.full(ds.n_users, -1, dtype=np.int64)
    row[res.users["test"]] = np.arange(len(res.users["test"]))
    ru, ri, rc = (np.asarray(ex[key]) for key in ("reason_user", "reason_item", "reason_code"))
    r = row[ru]
    ok = r >= 0
    found = np.zeros(len(ru), dtype=bool)
    found[ok] = (res.topk["test"][r[ok], :k] == ri[ok, None]).any(axis=1)
    out = {}
    for c in range(max(len(names), int(rc.max()) + 1 if len(rc) else 0)):
        sel = rc == c
        nm = names[c] if c < len(names) else str(c)
        out[nm] = {f"recall@{k}": float(found[sel].mean()) if sel.any() else float("nan"), "n": int(sel.sum())}
    return out


def default_pair(modalities: list[str]) -> tuple[str, str] | None:
    """The paper's (V, T) order when both exist, else the first two modality branches."""
    if "image" in modalities and "text" in modalities:
        return "image", "text"
    return (modalities[0], modalities[1]) if len(modalities) >= 2 else None


def branch_diagnostics(
    results: dict[str, RankingResult], ds: Dataset, k: int = 20, pair: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Everything ``modalrec diagnose`` reports, from one test ranking per branch (with top-K lists)."""
    mods = [b for b in results if b != "fused"]
    pair = pair or default_pair(mods)
    out: dict[str, Any] = {"k": k, "branches": {b: r.metrics["test"] for b, r in results.items()}}
    users_f, hit_f = user_hits(results["fused"], k)
    out["n_users"] = int(len(users_f))
    if pair is not None:
        a, b = pair
        ua, ha = user_hits(results[a], k)
        ub, hb = user_hits(results[b], k)
        assert np.array_equal(ua, users_f) and np.array_equal(ub, users_f), "branches ranked different users"
        out["pair"] = [a, b]
        out["taxonomy"] = taxonomy(ha, hb, hit_f, a, b)
    reasons = {b: reason_recall(r, ds, k) for b, r in results.items()}
    if any(v is not None for v in reasons.values()):
        out["reasons"] = reasons
    return out


def diagnose_run(
    path: str | Path, k: int = 20, pair: tuple[str, str] | None = None, write: bool = True
) -> dict[str, Any]:
    """Load a run directory, rank the test split once per branch (ONE forward), write diagnostics.json."""
    import torch

    from modalrec.api import load_run  # run-level helper: imported lazily (api sits above evaluate)
    from modalrec.errors import ModalrecError
    from modalrec.io import write_json
    from modalrec.train.trainer import rank_reps

    run = load_run(path)
    cfg = run.config
    cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"topk": sorted({*cfg.eval.topk, k})})})
    run.model.eval()
    with torch.no_grad():
        reps = run.model.ranking_representations()
    if pair is not None:
        bad = [m for m in pair if m not in reps.users or m == "fused"]
        if bad:
            mods = [b for b in reps.branches if b != "fused"] or ["none"]
            raise ModalrecError(f"--pair: {bad[0]!r} is not a modality branch of this run (have: {', '.join(mods)})")
    results = {b: rank_reps(reps, run.dataset, cfg, ("test",), branch=b, keep_topk=True) for b in reps.branches}
    # the loss terms actually logged tell which objective ran (a model may default to its own objective)
    ran_brmrs = any("chns" in h or "syn" in h for h in run.history)
    objective = "brmrs" if ran_brmrs else cfg.objective
    out = {"run": str(run.dir), "model": cfg.model, "objective": objective, "dataset": run.dataset.name}
    out.update(branch_diagnostics(results, run.dataset, k, pair))
    if write and run.dir is not None:
        write_json(Path(run.dir) / "diagnostics.json", out)
    return out
