"""Train models over 3 seeds on a dataset (default Last.fm-2K, text + audio); print a Markdown table.

    python scripts/lastfm_table.py --data ../shared/data/lastfm-2k --out docs/results-lastfm.md
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import numpy as np  # noqa: E402

import modalrec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="../shared/data/lastfm-2k")
    ap.add_argument("--models", nargs="*", default=["bpr", "lightgcn", "vbpr", "freedom"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--features", default="text=all-MiniLM-L6-v2.npy,audio=vggish.npy", help="modality=file pairs")
    ap.add_argument("--inter", default="lfm2k.inter", help="the .inter file ('' = the folder's only one)")
    ap.add_argument("--title", default="Last.fm-2K (lfm2k.inter; text = all-MiniLM-L6-v2, audio = VGGish)")
    ap.add_argument("--out")
    ap.add_argument("overrides", nargs="*", help="key=value applied to every run")
    a = ap.parse_args()
    feats = dict(p.split("=", 1) for p in a.features.split(",")) if a.features else None
    ds = modalrec.load_dataset(a.data, features=feats, inter=a.inter or None)
    rows, raw = [], {}
    for m in a.models:
        vals = []
        for s in a.seeds:
            ov = [f"threads={a.threads}", *a.overrides]
            run = modalrec.train(m, ds, seed=s, overrides=ov, out=tempfile.mkdtemp(prefix=f"lfm-{m}-"))
            t = run.metrics["test"]
            vals.append([t["recall@10"], t["recall@20"], t["ndcg@10"], t["ndcg@20"], run.metrics["best_epoch"]])
            print(m, s, vals[-1], flush=True)
        v = np.array(vals)
        raw[m] = vals
        cells = " | ".join(f"{v[:, j].mean():.4f} ± {v[:, j].std(ddof=1) if len(v) > 1 else 0:.4f}" for j in range(4))
        rows.append(f"| {m} | {cells} | {v[:, 4].mean():.0f} |")
    table = (
        f"{a.title}, test metrics at the best validation "
        f"epoch, mean ± std over seeds {a.seeds}, default hyper-parameters, full ranking with train+valid masked.\n\n"
        "| model | Recall@10 | Recall@20 | NDCG@10 | NDCG@20 | best epoch |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n"
    )
    print(table)
    if a.out:
        from modalrec.io import write_json, write_text

        write_text(a.out, table)
        write_json(a.out + ".json", raw)


if __name__ == "__main__":
    main()
