"""``modalrec data build`` (raw data -> MMRec layout) and ``modalrec data download`` (public originals)."""

from __future__ import annotations

import argparse

from modalrec.cli.main import data_command, dump_json


@data_command
def _build_parser(dsub: argparse._SubParsersAction) -> None:
    p = dsub.add_parser("build", help="build a dataset in the MMRec layout from raw interactions, text and images")
    p.add_argument("spec", help="a build spec YAML (e.g. specs/movielens-100k-tmdb.yaml)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--source", help="raw-data folder (overrides the spec's `source`)")
    p.add_argument("--json", action="store_true", help="print build.json's counts and stats as JSON")
    p.set_defaults(func=_build)


@data_command
def _download_parser(dsub: argparse._SubParsersAction) -> None:
    p = dsub.add_parser("download", help="download public originals (MovieLens, Amazon 2014/2018) with checksums")
    p.add_argument("name", nargs="?", help="dataset name; --list shows them")
    p.add_argument("--out", help="output folder")
    p.add_argument("--list", action="store_true", help="list the downloadable datasets")
    p.set_defaults(func=_download)


def _build(args: argparse.Namespace) -> int:
    from modalrec.data.build import build

    ds = build(args.spec, args.out, source=args.source)
    rep = ds.provenance["build_report"]
    if args.json:
        dump_json({k: rep[k] for k in ("counts", "stats", "features", "seconds")})
    else:
        feats = ", ".join(f"{m} {v['dim']}-d ({v['missing']} mean-filled)" for m, v in rep["features"].items())
        print(f"wrote {ds!r} to {args.out} in {rep['seconds']:.1f}s; features: {feats or 'none'}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from modalrec.data.build.download import describe, download
    from modalrec.errors import ModalrecError

    if args.list or not args.name:
        for row in describe():
            print(f"{row['name']:<24} {row['checksums']:<26} {row['description']}")
        return 0 if args.list else 2
    if not args.out:
        raise ModalrecError("give --out DIR (where the files go)")
    for p in download(args.name, args.out):
        print(p)
    return 0
