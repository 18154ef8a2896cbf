"""``modalrec diagnose RUN_DIR``: per-branch metrics, the six-way hit taxonomy, per-reason recall."""

from __future__ import annotations

import argparse

from modalrec.cli.main import command, dump_json


@command
def _diagnose(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="per-branch Recall/NDCG, the six-way taxonomy (BR-MRS Sec. 3.6-3.7) and per-reason recall",
        description="Ranks the test split with every branch of a trained run and writes RUN_DIR/diagnostics.json.",
    )
    p.add_argument("run_dir", help="a directory written by `modalrec train`")
    p.add_argument("--k", type=int, default=20, help="cut-off for the hit taxonomy and reason recall (default 20)")
    p.add_argument("--pair", help="two modality branches, e.g. image,text (default: image,text or the first two)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_diagnose_run)


def _diagnose_run(args: argparse.Namespace) -> int:
    from modalrec.errors import ModalrecError
    from modalrec.evaluate.diagnostics import diagnose_run

    pair = None
    if args.pair:
        parts = [x.strip() for x in args.pair.split(",") if x.strip()]
        if len(parts) != 2:
            raise ModalrecError(f"--pair expects two modality names separated by a comma, got {args.pair!r}")
        pair = (parts[0], parts[1])
    if args.k < 1:
        raise ModalrecError(f"--k must be a positive integer, got {args.k}")
    d = diagnose_run(args.run_dir, k=args.k, pair=pair)
    if args.json:
        dump_json(d)
        return 0
    print_diagnostics(d)
    return 0


def print_diagnostics(d: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    branches = d["branches"]
    keys = [m for m in next(iter(branches.values())) if m.split("@")[0] in ("recall", "ndcg")]
    t = Table(title=f"{d['model']} ({d['objective']}) on {d['dataset']}: test metrics per branch")
    t.add_column("branch")
    for k in keys:
        t.add_column(k, justify="right")
    for b, m in branches.items():
        t.add_row(b, *[f"{m[k]:.4f}" for k in keys])
    con.print(t)
    if "taxonomy" in d:
        a, b = d["pair"]
        t = Table(title=f"hit taxonomy at K={d['k']} over {d['n_users']} test users ({a}, {b}, fused)")
        for c in ("case", "count", "share"):
            t.add_column(c, justify="left" if c == "case" else "right")
        for case, v in d["taxonomy"].items():
            t.add_row(case, str(v["count"]), f"{v['share']:.3f}")
        con.print(t)
    else:
        con.print("taxonomy: this run has fewer than two modality branches")
    if "reasons" in d:
        rb = {b: r for b, r in d["reasons"].items() if r}
        names = list(next(iter(rb.values())))
        rkey = f"recall@{d['k']}"
        t = Table(title=f"Recall@{d['k']} per planted reason (test pairs)")
        t.add_column("branch")
        for nm in names:
            t.add_column(f"{nm} (n={rb[next(iter(rb))][nm]['n']})", justify="right")
        for b, r in rb.items():
            t.add_row(b, *[f"{r[nm][rkey]:.4f}" for nm in names])
        con.print(t)
    print(f"wrote {d['run']}/diagnostics.json")
