"""Experiment subcommands: sweep, results, report."""

from __future__ import annotations

import argparse
import sys

from modalrec.cli.main import command, dump_json

RESULT_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


@command
def _sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a grid of trials from a sweep spec (parallel, resumable)",
        description="Expand SPEC.yaml (base + axes + zip - exclude), print the trial count and run the "
        "unfinished trials into DIR/results.sqlite. Rerun the same command to resume.",
    )
    p.add_argument("spec", help="sweep spec YAML (see docs/experiments.md)")
    p.add_argument("--study", required=True, help="study directory (results.sqlite, trials/, report/)")
    p.add_argument("--workers", type=int, default=2, help="parallel trials (default 2; 0 = in this process)")
    p.add_argument("--backend", choices=["local", "ray"], default="local", help="local processes or a Ray cluster")
    p.add_argument("--address", help="Ray address (default: start a local Ray instance)")
    p.add_argument("--threads", type=int, help="torch threads per trial (default: cores // workers)")
    p.add_argument("--limit", type=int, help="run at most this many trials, then stop")
    p.add_argument("--retry-failed", action="store_true", help="run failed trials again")
    p.add_argument("--dry-run", action="store_true", help="expand and list the trials without running them")
    p.add_argument("--no-progress", action="store_true", help="hide the live progress display")
    p.set_defaults(func=_sweep_run)


def _sweep_run(args: argparse.Namespace) -> int:
    from modalrec.experiments.runner import run_sweep
    from modalrec.experiments.spec import expand, load_spec

    if args.address and args.backend != "ray":
        from modalrec.errors import ConfigError

        raise ConfigError("--address is a Ray cluster address; add --backend ray")
    spec = load_spec(args.spec)
    trials = expand(spec)
    print(f"study {spec.name!r}: {len(trials)} trials over {', '.join(spec.swept_keys) or 'no axes'}")
    if args.dry_run:
        for t in trials:
            print(t.hash, " ".join(f"{k}={v}" for k, v in t.swept.items()))
        return 0
    try:
        counts = run_sweep(
            spec,
            args.study,
            workers=args.workers,
            backend=args.backend,
            address=args.address,
            limit=args.limit,
            retry_failed=args.retry_failed,
            progress=not args.no_progress,
            threads=args.threads,
        )
    except KeyboardInterrupt:
        print(
            "interrupted: finished trials are saved; rerun the same command to resume "
            "(interrupted trials continue from their last checkpoint)",
            file=sys.stderr,
        )
        return 130
    print(
        f"ran {counts['ran']} trial(s): {counts['done']} done, {counts['failed']} failed; "
        f"{counts['skipped']} already finished. Results: {args.study}/results.sqlite"
    )
    return 1 if counts["failed"] else 0


@command
def _results(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="list a study's trials with their swept values and metrics")
    p.add_argument("study", help="a study directory written by `modalrec sweep`")
    p.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table", help="output format")
    p.add_argument("--all-metrics", action="store_true", help="every metric (default: R@10/20, N@10/20)")
    p.add_argument("--include-stale", action="store_true", help="also list trials of earlier versions of the spec")
    p.set_defaults(func=_results_run)


def results_frame(study: str, all_metrics: bool = False, include_stale: bool = False):  # noqa: ANN201 - a DataFrame
    """One row per trial: hash, status, swept values, valid and test metrics, seconds, error."""
    from modalrec.experiments.select import trials_frame
    from modalrec.experiments.store import Store

    with Store(study, create=False) as store:
        swept = list(store.meta().get("swept_keys") or [])
        df = trials_frame(store, status=None, current_only=not include_stale)
    if df.empty:
        return df
    mcols = [c for c in df.columns if c.startswith(("valid.", "test."))]
    if not all_metrics:
        mcols = [f"{s}.{m}" for s in ("valid", "test") for m in RESULT_METRICS if f"{s}.{m}" in df]
    cols = ["hash", "status", *[k for k in swept if k in df], *mcols, "best_epoch", "seconds", "peak_rss_mb", "error"]
    out = df[cols].copy()
    out["error"] = out["error"].map(lambda e: str(e).splitlines()[0] if isinstance(e, str) else "")
    return out


def _results_run(args: argparse.Namespace) -> int:
    df = results_frame(args.study, args.all_metrics, args.include_stale)
    if df.empty:
        print("no trials")
        return 0
    if args.format == "csv":
        df.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        dump_json(df.astype(object).where(df.notna(), None).to_dict(orient="records"))
    elif args.format == "markdown":
        print(_markdown(df))
    else:
        from rich.console import Console
        from rich.table import Table

        df = df.drop(columns=["peak_rss_mb"]).assign(hash=df["hash"].str[:10])
        t = Table(title=f"trials in {args.study} (v. = validation, t. = test)")
        for c in df.columns:
            t.add_column(c.replace("valid.", "v.").replace("test.", "t."), no_wrap=c != "error")
        for _, r in df.iterrows():
            t.add_row(*[_cell(v) for v in r])
        console = Console()
        if not console.is_terminal:
            console = Console(width=400)
        console.print(t)
    return 0


def _cell(v: object) -> str:
    if isinstance(v, float):
        return "" if v != v else (f"{v:.4f}" if v == 0 or abs(v) >= 1e-3 else f"{v:.3g}")
    return "" if v is None else str(v)


def _markdown(df) -> str:  # noqa: ANN001
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in r) + " |" for _, r in df.iterrows()]
    return "\n".join(lines)


@command
def _report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a study's tables and figures (Markdown, HTML, PNG, SVG)")
    p.add_argument("study", help="a study directory written by `modalrec sweep`")
    p.set_defaults(func=_report_run)


def _report_run(args: argparse.Namespace) -> int:
    from modalrec.experiments.report import write_report

    paths = write_report(args.study)
    print(f"wrote {paths['markdown']}, {paths['html']} and {len(paths['figures'])} figure file(s)")
    return 0
