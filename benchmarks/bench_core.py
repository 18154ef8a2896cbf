"""Core speed benchmark: seconds per training epoch, seconds for validation+test evaluation, peak RSS.

Each (model, dataset) runs in its own subprocess so peak RSS is per configuration. Settings follow
../shared/reference/toolbox-speed.md (batch 2048, the first point of each published grid).

    python benchmarks/bench_core.py --data synthetic:baby --out benchmarks/results/core-baby.md
    python benchmarks/bench_core.py --data ../shared/data/amazon-interactions/sports.inter --synthetic-features
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

# name, model, overrides (toolbox settings), toolbox s/epoch on Baby (reference/toolbox-speed.md)
CASES = [
    ("BPR", "bpr", {}, 0.53),
    ("LightGCN (1 layer)", "lightgcn", {"params.n_layers": 1}, 2.46),
    ("LightGCN (3 layers)", "lightgcn", {"params.n_layers": 3}, None),
    ("VBPR", "vbpr", {}, 3.35),
    ("FREEDOM (reg_weight 0)", "freedom", {"params.dropout": 0.8, "params.reg_weight": 0.0}, 15.88),
    ("FREEDOM (reg_weight 1e-4)", "freedom", {"params.dropout": 0.8, "params.reg_weight": 1e-4}, None),
    ("MGCN", "mgcn", {}, 21.01),
    ("LATTICE", "lattice", {}, 23.43),
    ("SMORE", "smore", {}, None),
    ("DRAGON", "dragon", {}, None),
    ("MMGCN", "mmgcn", {}, None),
    ("DualGNN", "dualgnn", {}, None),
    ("GRCN", "grcn", {}, None),
    ("MIG-GT", "mig-gt", {}, None),
    ("BR-MRS", "brmrs", {}, None),
]
TOOLBOX_EVAL_BY_MODEL = {"lattice": 52.41}
TOOLBOX_EVAL = 4.0


def attach_features(ds, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    feats = {
        "image": rng.random((ds.n_items, 4096), dtype=np.float32),
        "text": rng.random((ds.n_items, 384), dtype=np.float32),
    }
    return ds.replace(features=feats)


def run_one(
    model: str, data: str, overrides: dict, synthetic_features: bool, epochs: int, threads: int = 2, n_evals: int = 2
) -> dict:
    import torch

    import modalrec
    from modalrec.api import make_config
    from modalrec.train.trainer import Trainer

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    ds = modalrec.load_dataset(data)
    if synthetic_features:
        ds = attach_features(ds)
    t_load = time.perf_counter() - t0
    cfg = make_config(model, data, 0, {**overrides, "train.epochs": epochs, "threads": threads}, dataset_name=ds.name)
    t0 = time.perf_counter()
    tr = Trainer(cfg, ds)
    t_build = time.perf_counter() - t0
    epoch_times = []
    for e in range(epochs):
        t0 = time.perf_counter()
        tr.train_epoch(e)
        epoch_times.append(time.perf_counter() - t0)
    evals = []
    for _ in range(n_evals):
        t0 = time.perf_counter()
        res = tr.evaluate(("valid", "test"))
        evals.append(time.perf_counter() - t0)
    return {
        "load_s": t_load,
        "build_s": t_build,
        "epoch_s": min(epoch_times[1:] or epoch_times),
        "first_epoch_s": epoch_times[0],
        "eval_s": min(evals),
        "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "recall@20": res.metrics["test"]["recall@20"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="synthetic:baby")
    ap.add_argument("--synthetic-features", action="store_true", help="attach random 4096-d image + 384-d text")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="case names (model registry names) to run")
    ap.add_argument("--out", help="write the Markdown table here")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--evals", type=int, default=2, help="evaluations to time (best of)")
    ap.add_argument("--max-steps", type=int, default=0, help="cap training steps per epoch (memory runs)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        model, ov = json.loads(a.child)
        print(json.dumps(run_one(model, a.data, ov, a.synthetic_features, a.epochs, a.threads, a.evals)))
        return
    rows = []
    for name, model, ov, toolbox in CASES:
        if a.only and model not in a.only:
            continue
        if a.max_steps:
            ov = {**ov, "train.max_steps_per_epoch": a.max_steps}
        child = json.dumps([model, ov])
        cmd = [sys.executable, __file__, "--data", a.data, "--epochs", str(a.epochs), "--child", child]
        cmd += ["--threads", str(a.threads), "--evals", str(a.evals)]
        if a.synthetic_features:
            cmd.append("--synthetic-features")
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = f"{r['epoch_s'] / toolbox:.2f}" if toolbox else "-"
        rows.append(
            f"| {name} | {r['epoch_s']:.2f} | {toolbox if toolbox else '-'} | {ratio} | {r['eval_s']:.2f} | "
            f"{r['eval_s'] / TOOLBOX_EVAL_BY_MODEL.get(model, TOOLBOX_EVAL):.2f} | {r['rss_gib']:.2f} | "
            f"{r['build_s']:.1f} |"
        )
        print(rows[-1], flush=True)
    head = (
        f"Data: {a.data}{' + random 4096/384-d features' if a.synthetic_features else ''}; {a.threads} threads; "
        f"best of epochs 2..{a.epochs}"
        f"{f' (each capped at {a.max_steps} steps: s/epoch is per {a.max_steps} steps)' if a.max_steps else ''}; "
        f"eval = one forward + full ranking of valid and test, best of {a.evals}.\n\n"
        "| model | train s/epoch | toolbox s/epoch (Baby) | ratio | eval s (valid+test) | ratio vs toolbox eval | "
        "peak RSS GiB | setup s |\n|---|---|---|---|---|---|---|---|\n"
    )
    table = head + "\n".join(rows) + "\n"
    if a.out:
        from modalrec.io import write_text

        write_text(a.out, table)
    print(table)


if __name__ == "__main__":
    main()
