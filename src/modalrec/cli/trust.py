"""Trust subcommands: ``modalrec corrupt`` (stress corruptions) and ``modalrec rectify`` (Modality-level
Rectification). Both write a folder in the MMRec layout that any model can train on."""

from __future__ import annotations

import argparse

from modalrec.cli.main import DATA_HELP, add_folder_args, command, dump_json, parse_features
from modalrec.errors import ModalrecError


def parse_ratios(text: str | None) -> dict[str, float]:
    """``image=0.2,text=0.2`` -> {"image": 0.2, "text": 0.2}."""
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        m, sep, r = part.partition("=")
        try:
            if not sep or not m.strip():
                raise ValueError
            out[m.strip()] = float(r)
        except ValueError:
            raise ModalrecError(f"--permute expects MODALITY=RATIO pairs separated by commas, got {part!r}") from None
    return out


@command
def _corrupt(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "corrupt",
        help="write a corrupted copy of a dataset (permuted features, noisy edges) plus corruption.json",
        description="Modality misalignment: permute floor(eta*|I|) feature rows per modality among themselves. "
        "Interaction noise: --edges -0.1 deletes 10%% of training edges, +0.1 adds as many random non-edges.",
    )
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("out", help="output folder (MMRec layout + corruption.json)")
    p.add_argument("--permute", help="modality=ratio pairs, e.g. image=0.2,text=0.2")
    p.add_argument("--edges", type=float, default=0.0, help="eta_e: negative deletes, positive adds (default 0)")
    p.add_argument("--seed", type=int, default=0, help="corruption seed (default 0)")
    add_folder_args(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_corrupt_run)


def _corrupt_run(args: argparse.Namespace) -> int:
    from modalrec.data.corrupt import corrupt

    feats = parse_features(args.features)
    ds, rec = corrupt(args.data, parse_ratios(args.permute), args.edges, args.seed, args.out, feats, args.inter)
    summary = {
        "features": {m: {k: r[k] for k in ("ratio", "n", "fixed_points")} for m, r in rec["features"].items()},
        "edges": None if rec["edges"] is None else {k: rec["edges"][k] for k in ("eta", "op", "n")},
    }
    if args.json:
        dump_json(summary)
    else:
        for m, r in summary["features"].items():
            print(f"{m}: permuted {r['n']} rows (ratio {r['ratio']}), {r['fixed_points']} kept their own row")
        if summary["edges"]:
            e = summary["edges"]
            print(f"edges: {'deleted' if e['op'] == 'delete' else 'added'} {e['n']} training edges (eta_e {e['eta']})")
        print(f"wrote {ds!r} to {args.out} (record: {args.out}/corruption.json)")
    return 0


@command
def _rectify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rectify",
        help="rectify misaligned modality features (anchors + projection + Sinkhorn); writes rectify.json",
        description="Modality-level Rectification: features of identical shapes in OUT (MMRec layout). rho defaults "
        "to eta_m + 0.05 when DATA/corruption.json records eta_m, else 0.75.",
    )
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("out", help="output folder (MMRec layout + rectify.json)")
    p.add_argument("--lam", type=float, default=0.5, help="diagonal prior mix lambda (Eq. 14, default 0.5)")
    p.add_argument("--tau", type=float, default=0.1, help="affinity temperature (Eq. 10, default 0.1)")
    p.add_argument("--rho", type=float, default=None, help="small-loss keep ratio (Eq. 8)")
    p.add_argument("--k", type=int, default=10, help="top-K affinity neighbours per anchor (default 10)")
    p.add_argument("--no-sinkhorn", action="store_true", help="ablation: row-normalise instead of Sinkhorn")
    p.add_argument("--no-small-loss", action="store_true", help="ablation: full-batch projection loss")
    p.add_argument("--anchor-epochs", type=int, default=50, help="epochs of the LightGCN anchor model")
    p.add_argument("--proj-epochs", type=int, default=50, help="epochs of the projection training")
    p.add_argument("--seed", type=int, default=0, help="seed of anchor and projection training")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_folder_args(p)
    p.set_defaults(func=_rectify_run)


def _rectify_run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from modalrec.rectify.module import rectify

    params = {
        "lam": args.lam,
        "tau": args.tau,
        "rho": args.rho,
        "k": args.k,
        "no_sinkhorn": args.no_sinkhorn,
        "no_small_loss": args.no_small_loss,
        "anchor_epochs": args.anchor_epochs,
        "proj_epochs": args.proj_epochs,
        "seed": args.seed,
    }
    try:
        ds, rep = rectify(args.data, args.out, parse_features(args.features), args.inter, args.threads, **params)
    except ValidationError as e:
        err = e.errors()[0]
        raise ModalrecError(f"invalid --{err['loc'][0]}: {err['msg']} (got {err.get('input')!r})") from None
    for m, r in rep["modalities"].items():
        sk = r["sinkhorn"]
        print(
            f"{m}: rho {r['rho']}, Sinkhorn error {sk['error']:.2e} after {sk['iterations']} iterations, "
            f"mean diagonal weight {r['mean_diagonal_weight']:.3f}"
        )
    print(f"wrote rectified {ds!r} to {args.out} (report: {args.out}/rectify.json, {rep['total_seconds']:.1f}s)")
    return 0
