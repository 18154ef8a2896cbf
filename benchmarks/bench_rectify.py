"""Time and peak memory of Modality-level Rectification at Baby and Electronics scale.

Baby (synthetic:baby, 19,445 users x 7,050 items, image 4096-d + text 384-d): the full pipeline
(LightGCN anchors -> projection -> affinity -> Sinkhorn -> aggregation) with short anchor training.
Electronics (63,001 items): random features and random anchors of that size time the projection
(a few epochs, extrapolated), affinity, Sinkhorn and aggregation; a short LightGCN anchor training on a
random 192,403 x 63,001 graph with 1.35M training edges is timed per step and extrapolated to an epoch.
Each scale runs in its own process so that its peak RSS is its own.

    python benchmarks/bench_rectify.py --scale all --threads 1 --out benchmarks/results/rectify.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_baby(anchor_epochs: int, proj_epochs: int, threads: int) -> dict[str, Any]:
    """Full MR on synthetic:baby, both modalities, rho = 0.25 (eta_m = 0.2 permuted first)."""
    import os

    os.environ.setdefault("MODALREC_CACHE", "/tmp/modalrec-bench-cache")
    from modalrec.config.schema import RectifyConfig
    from modalrec.data.corrupt import apply_stress
    from modalrec.data.synthetic import generate
    from modalrec.rectify.module import rectify_dataset

    t0 = time.perf_counter()
    ds = generate("baby", seed=0)
    ds, _ = apply_stress(ds, {"all": 0.2}, seed=0)
    t_gen = time.perf_counter() - t0
    cfg = RectifyConfig(enabled=True, anchor_epochs=anchor_epochs, proj_epochs=proj_epochs, cache=False)
    t1 = time.perf_counter()
    _, rep = rectify_dataset(ds, cfg, threads=threads)
    total = time.perf_counter() - t1
    return {
        "scale": "baby",
        "n_items": ds.n_items,
        "n_users": ds.n_users,
        "train_edges": int(ds.train.nnz),
        "features": {m: list(f.shape) for m, f in ds.features.items()},
        "generate_seconds": t_gen,
        "anchor_epochs": anchor_epochs,
        "anchor_seconds": rep["anchor_seconds"],
        "proj_epochs": proj_epochs,
        "modalities": {
            m: {"seconds": r["seconds"], "sinkhorn": r["sinkhorn"], "nnz": r["nnz"]}
            for m, r in rep["modalities"].items()
        },
        "total_seconds": total,
        "peak_rss_mb": _rss_mb(),
    }


def _lightgcn_steps(n_users: int, n_items: int, n_edges: int, steps: int, threads: int) -> dict[str, float]:
    """Seconds per BPR step of LightGCN (3 layers, 64-d) on a random graph of the given size."""
    from modalrec.config import resolve_config
    from modalrec.data.dataset import Dataset
    from modalrec.train.trainer import Trainer

    rng = np.random.default_rng(0)
    u = rng.integers(0, n_users, size=n_edges)
    i = rng.integers(0, n_items, size=n_edges)
    one = (np.array([0]), np.array([0]))
    ds = Dataset.from_pairs("electronics-random", n_users, n_items, {"train": (u, i), "valid": one, "test": one})
    cfg = resolve_config(
        {"model": "lightgcn", "threads": threads, "device": "cpu"},
        {"train.max_steps_per_epoch": steps, "train.checkpoint": False},
    )
    t0 = time.perf_counter()
    tr = Trainer(cfg, ds)
    t_build = time.perf_counter() - t0
    t1 = time.perf_counter()
    tr.train_epoch(0)
    per_step = (time.perf_counter() - t1) / steps
    steps_per_epoch = int(np.ceil(ds.train.nnz / cfg.train.batch_size))
    return {
        "train_edges": int(ds.train.nnz),
        "build_seconds": t_build,
        "seconds_per_step": per_step,
        "steps_per_epoch": steps_per_epoch,
        "extrapolated_epoch_seconds": per_step * steps_per_epoch,
    }


def bench_electronics(proj_epochs: int, threads: int, lgcn_steps: int) -> dict[str, Any]:
    """Random features/anchors with 63,001 items: projection, affinity, Sinkhorn, aggregation; LightGCN steps."""
    import torch

    from modalrec.rectify.affinity import topk_affinity
    from modalrec.rectify.module import mix
    from modalrec.rectify.projection import train_projection
    from modalrec.rectify.sinkhorn import sinkhorn

    torch.set_num_threads(threads)
    n, d = 63001, 64
    rng = np.random.default_rng(0)
    anchors = rng.standard_normal((n, d), dtype=np.float32)
    anchors /= np.linalg.norm(anchors, axis=1, keepdims=True)
    out: dict[str, Any] = {"scale": "electronics", "n_items": n, "anchor_dim": d, "modalities": {}}
    for m, dim in (("text", 384), ("image", 4096)):
        x = rng.standard_normal((n, dim), dtype=np.float32)
        t0 = time.perf_counter()
        z, _ = train_projection(x, anchors, rho=0.25, epochs=proj_epochs, batch_size=1024, seed=0)
        t1 = time.perf_counter()
        a = topk_affinity(anchors, z, k=10, tau=0.1)
        t2 = time.perf_counter()
        p, sk = sinkhorn(a, eps=1e-8, tol=1e-3, max_iter=200)
        t3 = time.perf_counter()
        rect = mix(x, p, 0.5)
        t4 = time.perf_counter()
        assert rect.shape == x.shape
        out["modalities"][m] = {
            "dim": dim,
            "proj_epochs": proj_epochs,
            "projection_seconds_per_epoch": (t1 - t0) / proj_epochs,
            "affinity_seconds": t2 - t1,
            "sinkhorn_seconds": t3 - t2,
            "sinkhorn": sk,
            "aggregation_seconds": t4 - t3,
            "nnz": int(a.nnz),
        }
        del x, z, a, p, rect
    out["lightgcn_anchor"] = _lightgcn_steps(192403, n, 1351350, lgcn_steps, threads)
    out["peak_rss_mb"] = _rss_mb()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=["baby", "electronics", "all"], default="all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--anchor-epochs", type=int, default=5)
    ap.add_argument("--proj-epochs", type=int, default=10)
    ap.add_argument("--elec-proj-epochs", type=int, default=2)
    ap.add_argument("--lgcn-steps", type=int, default=10)
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    if args.scale == "all":
        results = []
        for scale in ("baby", "electronics"):
            cmd = [sys.executable, __file__, "--scale", scale, *_passthrough(args)]
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            results.append(json.loads(res.stdout.strip().splitlines()[-1]))
        text = json.dumps(results, indent=2)
    else:
        import torch

        torch.set_num_threads(args.threads)
        if args.scale == "baby":
            r = bench_baby(args.anchor_epochs, args.proj_epochs, args.threads)
        else:
            r = bench_electronics(args.elec_proj_epochs, args.threads, args.lgcn_steps)
        text = json.dumps(r)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)


def _passthrough(a: argparse.Namespace) -> list[str]:
    return [
        "--threads", str(a.threads), "--anchor-epochs", str(a.anchor_epochs), "--proj-epochs", str(a.proj_epochs),
        "--elec-proj-epochs", str(a.elec_proj_epochs), "--lgcn-steps", str(a.lgcn_steps),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
