"""Core subcommands: data info|synth, train, evaluate, recommend, models."""

from __future__ import annotations

import argparse
from pathlib import Path

from modalrec.cli.main import (
    DATA_COMMANDS,
    DATA_HELP,
    add_folder_args,
    command,
    data_command,
    data_overrides,
    dump_json,
    parse_features,
    print_metrics,
)


@command
def _data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect, generate or build datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    for reg in DATA_COMMANDS:
        reg(dsub)
    p.set_defaults(func=lambda a: p.print_help() or 2)


@data_command
def _data_info_parser(dsub: argparse._SubParsersAction) -> None:
    info = dsub.add_parser("info", help="print users, items, interactions per split, density, features")
    info.add_argument("path", help=DATA_HELP)
    add_folder_args(info)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=_data_info)


@data_command
def _data_synth_parser(dsub: argparse._SubParsersAction) -> None:
    synth = dsub.add_parser("synth", help="write a synthetic dataset (planted synergy) in the MMRec layout")
    synth.add_argument("preset", help="tiny, small, baby or electronics")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--seed", type=int, default=0, help="generator seed (same seed, same data)")
    synth.set_defaults(func=_data_synth)


def _data_info(args: argparse.Namespace) -> int:
    from modalrec.api import load_dataset

    ds = load_dataset(args.path, parse_features(args.features), args.inter)
    st = ds.stats()
    if args.json:
        dump_json(st)
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"dataset {st['name']}", show_header=False)
    for k in ("users", "items", "interactions", "train", "valid", "test"):
        t.add_row(k, f"{st[k]:,}")
    t.add_row("density", f"{st['density']:.6f}")
    for m, d in st["features"].items():
        t.add_row(f"feature {m}", f"{d[0] if d else 1}-d")
    if not st["features"]:
        t.add_row("features", "none")
    Console().print(t)
    return 0


def _data_synth(args: argparse.Namespace) -> int:
    from modalrec.data.mmrec import write_mmrec
    from modalrec.data.synthetic import generate

    ds = generate(args.preset, seed=args.seed)
    out = write_mmrec(ds, args.out)
    print(f"wrote {ds!r} to {out}")
    return 0


@command
def _train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model and report validation/test metrics",
        description="Train MODEL on DATA. Extra key=value arguments override the config "
        "(e.g. train.lr=0.0005 params.n_layers=2 eval.topk=[10,20,50] objective=brmrs).",
    )
    p.add_argument("model", help="model name (see `modalrec models`)")
    p.add_argument("--data", default="synthetic:small", help=DATA_HELP + " (default synthetic:small)")
    p.add_argument("--features", help="modality=file.npy pairs for the data folder")
    p.add_argument("--config", help="YAML run config (sections: data, train, eval, params, loss, ...)")
    p.add_argument("--out", help="run directory (default runs/MODEL-DATA-sSEED-TIME)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides with dotted keys")
    p.set_defaults(func=_train_run)


def _train_run(args: argparse.Namespace) -> int:
    from modalrec.api import train

    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        from modalrec.errors import ConfigError

        raise ConfigError(f"unexpected argument {bad[0]!r}; overrides are key=value (e.g. train.epochs=10)")
    run = train(
        args.model,
        args.data,
        seed=args.seed if args.seed is not None else 0,
        overrides=[*data_overrides(args), *args.overrides],
        config=args.config,
        out=args.out,
        progress=not args.no_progress,
        resume=args.resume,
    )
    print_metrics(run.metrics, title=f"{args.model} on {run.dataset.name} (best epoch {run.metrics['best_epoch']})")
    print(f"run directory: {run.dir}")
    return 0


@command
def _evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="re-evaluate a run directory's best checkpoint")
    p.add_argument("run_dir", help="a directory written by `modalrec train`")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_evaluate_run)


def _evaluate_run(args: argparse.Namespace) -> int:
    from modalrec.api import evaluate

    m = evaluate(args.run_dir, progress=not args.json)
    if args.json:
        dump_json(m)
    else:
        print_metrics(m, title=f"evaluation of {Path(args.run_dir).name}")
    return 0


@command
def _recommend(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recommend", help="top-K items for given users from a run directory")
    p.add_argument("run_dir", help="a directory written by `modalrec train`")
    p.add_argument("--users", required=True, help="comma-separated user ids, e.g. 0,5,9")
    p.add_argument("--k", type=int, default=10, help="list length (default 10)")
    p.set_defaults(func=_recommend_run)


def _recommend_run(args: argparse.Namespace) -> int:
    from modalrec.api import load_run
    from modalrec.errors import ModalrecError

    try:
        users = [int(u) for u in args.users.split(",") if u.strip()]
    except ValueError:
        raise ModalrecError(f"--users expects comma-separated integers, got {args.users!r}") from None
    run = load_run(args.run_dir)
    top = run.recommend(users, args.k)
    print("userID\titemIDs")
    for u, row in zip(users, top):
        print(f"{u}\t{','.join(map(str, row))}")
    return 0


@command
def _models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models with their papers and branches")
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    p.set_defaults(func=_models_run)


def _models_run(args: argparse.Namespace) -> int:
    import modalrec.models  # noqa: F401
    from modalrec.models.registry import describe_models

    rows = describe_models()
    if args.format == "json":
        dump_json(rows)
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="modalrec models")
    for c in ("name", "year", "paper", "branches"):
        t.add_column(c)
    from rich.markup import escape

    for r in rows:
        t.add_row(r["name"], str(r["year"]), escape(r["paper"]), escape(r["branches"]))
    Console().print(t)
    return 0
