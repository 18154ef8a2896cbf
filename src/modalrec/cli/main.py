"""``modalrec``: train, evaluate and inspect multimodal recommenders from the shell.

Subcommands register themselves through ``COMMANDS`` (name -> (add_parser, run)), so later
features add a module here instead of editing one long function.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from modalrec.errors import ModalrecError

Register = Callable[[argparse._SubParsersAction], None]
COMMANDS: list[Register] = []
DATA_COMMANDS: list[Register] = []  # subcommands of `modalrec data`

# Modules whose import registers subcommands (one per feature area).
CLI_MODULES = (
    "modalrec.cli.commands",
    "modalrec.cli.brmrs",
    "modalrec.cli.experiments",
    "modalrec.cli.build",
    "modalrec.cli.trust",
)


def command(fn: Register) -> Register:
    """Register a top-level subcommand: ``fn(subparsers)`` adds its parser and sets ``func``."""
    COMMANDS.append(fn)
    return fn


def data_command(fn: Register) -> Register:
    """Register a ``modalrec data ...`` subcommand."""
    DATA_COMMANDS.append(fn)
    return fn


DATA_HELP = "a folder in the MMRec layout (or an .inter file), or synthetic:PRESET (tiny, small, baby, electronics)"


def add_folder_args(p: argparse.ArgumentParser) -> None:
    """``--features`` and ``--inter``: which files of an MMRec folder to read."""
    p.add_argument("--features", help="modality=file.npy pairs, e.g. text=all-MiniLM-L6-v2.npy,audio=vggish.npy")
    p.add_argument("--inter", help="the .inter file when the folder holds several")


def parse_features(text: str | None) -> dict[str, str] | None:
    """``image=img.npy,text=txt.npy`` -> mapping."""
    if not text:
        return None
    out = {}
    for part in text.split(","):
        m, sep, f = part.partition("=")
        if not sep or not m or not f:
            raise ModalrecError(f"--features expects MODALITY=FILE.npy pairs separated by commas, got {part!r}")
        out[m.strip()] = f.strip()
    return out


def data_overrides(args: argparse.Namespace) -> list[str]:
    ov = []
    if getattr(args, "features", None):
        ov += [f"data.features.{m}={f}" for m, f in parse_features(args.features).items()]
    return ov


def print_metrics(metrics: dict[str, dict[str, float]], title: str = "results") -> None:
    from rich.console import Console
    from rich.table import Table

    splits = [s for s in ("valid", "test") if metrics.get(s)]
    if not splits:
        print("no metrics")
        return
    keys = list(metrics[splits[0]])
    t = Table(title=title)
    t.add_column("metric")
    for s in splits:
        t.add_column(s, justify="right")
    for k in keys:
        t.add_row(k, *[f"{metrics[s].get(k, float('nan')):.4f}" for s in splits])
    Console().print(t)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modalrec",
        description="Multimodal recommendation: train, evaluate, stress-test and repair recommenders.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for reg in COMMANDS:
        reg(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    import importlib

    for mod in CLI_MODULES:
        importlib.import_module(mod)

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("modalrec").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    for h in logging.getLogger().handlers:
        h.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ModalrecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished epochs are checkpointed; rerun with --resume to continue", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


def dump_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
