"""The results store: one SQLite file per study (WAL mode), each trial result written in one transaction."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modalrec.errors import ModalrecError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    hash TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'pending',      -- pending | running | done | failed
    model TEXT, dataset TEXT, seed INTEGER,
    swept TEXT NOT NULL,                          -- JSON {dotted key: value}
    config TEXT NOT NULL,                         -- JSON resolved RunConfig
    valid TEXT, test TEXT,                        -- JSON {metric@k: value} at the best validation epoch
    best_epoch INTEGER,
    curve TEXT,                                   -- JSON [{epoch, loss, valid: {...}}] per evaluated epoch
    error TEXT,
    started REAL, finished REAL,                  -- unix times
    seconds REAL, train_seconds REAL,             -- wall time of the trial, time in training epochs
    peak_rss_mb REAL, rss_scope TEXT,             -- peak resident memory, scope 'trial' or 'process'
    versions TEXT, git_commit TEXT, host TEXT,
    run_dir TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    current INTEGER NOT NULL DEFAULT 1            -- 1 when the trial belongs to the latest expanded spec
);
"""
STATUSES = ("pending", "running", "done", "failed")
JSON_COLS = ("swept", "config", "valid", "test", "curve", "versions")


class Store:
    """A study's ``results.sqlite``; the sweep driver is the only writer, readers may run concurrently."""

    FILE = "results.sqlite"

    def __init__(self, study_dir: str | Path, create: bool = True):
        self.dir = Path(study_dir)
        self.path = self.dir / self.FILE
        if not create and not self.path.exists():
            raise ModalrecError(f"{self.dir} is not a study directory (no {self.FILE}); run `modalrec sweep` first")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)  # idempotent (IF NOT EXISTS)
        cols = {r["name"] for r in self.conn.execute("PRAGMA table_info(trials)")}
        if "current" not in cols:  # a store written before trials were marked current
            self.conn.execute("ALTER TABLE trials ADD COLUMN current INTEGER NOT NULL DEFAULT 1")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (including KeyboardInterrupt)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- study metadata -------------------------------------------------------------------
    def set_meta(self, **kv: Any) -> None:
        with self.transaction() as c:
            for k, v in kv.items():
                c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (k, json.dumps(v)))

    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.conn.execute("SELECT key, value FROM meta")}

    # -- trials ---------------------------------------------------------------------------
    def add_trials(self, trials: list[Any]) -> None:
        """Register the spec's trials as pending and mark exactly them as current.

        Existing rows are kept as they are; rows of earlier specs (or of configs that resolve
        differently after an upgrade) stay in the file as not current and are left out of reports.
        """
        with self.transaction() as c:
            c.execute("UPDATE trials SET current=0")
            c.executemany(
                "INSERT OR IGNORE INTO trials(hash, status, model, dataset, seed, swept, config) "
                "VALUES (?, 'pending', ?, ?, ?, ?, ?)",
                [
                    (t.hash, t.model, dataset_label(t.source), t.seed, json.dumps(t.swept), json.dumps(t.config))
                    for t in trials
                ],
            )
            c.executemany("UPDATE trials SET current=1 WHERE hash=?", [(t.hash,) for t in trials])

    def statuses(self) -> dict[str, str]:
        return {r["hash"]: r["status"] for r in self.conn.execute("SELECT hash, status FROM trials")}

    def mark_running(self, h: str, host: str = "") -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE trials SET status='running', started=?, host=?, attempts=attempts+1 WHERE hash=?",
                (time.time(), host, h),
            )

    def reset_running(self) -> int:
        """Trials left 'running' by an interrupted sweep go back to 'pending'; returns how many."""
        with self.transaction() as c:
            return c.execute("UPDATE trials SET status='pending' WHERE status='running'").rowcount

    def record(self, result: dict[str, Any]) -> None:
        """Commit one finished trial (done or failed) in a single transaction."""
        cols = [
            "status", "valid", "test", "best_epoch", "curve", "error", "started", "finished", "seconds",
            "train_seconds", "peak_rss_mb", "rss_scope", "versions", "git_commit", "host", "run_dir",
        ]  # fmt: skip
        if result.get("status") not in ("done", "failed"):
            raise ValueError(f"a recorded trial must be done or failed, got {result.get('status')!r}")
        vals = [json.dumps(result.get(c)) if c in JSON_COLS else result.get(c) for c in cols]
        with self.transaction() as c:
            cur = c.execute(
                f"UPDATE trials SET {', '.join(f'{k}=?' for k in cols)} WHERE hash=?", (*vals, result["hash"])
            )
            if cur.rowcount != 1:
                raise ModalrecError(f"trial {result['hash']} is not registered in {self.path}")

    def rows(self, status: str | None = None, current_only: bool = True) -> list[dict[str, Any]]:
        """Trials (JSON columns decoded) in insertion order; by default only those of the latest spec."""
        where = [w for w, on in (("status=?", bool(status)), ("current=1", current_only)) if on]
        q = "SELECT * FROM trials" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY rowid"
        out = []
        for r in self.conn.execute(q, (status,) if status else ()):
            d = dict(r)
            for c in JSON_COLS:
                d[c] = json.loads(d[c]) if d[c] is not None else None
            out.append(d)
        return out

    def counts(self) -> dict[str, int]:
        """Trials of the latest spec per status, plus ``stale`` (rows of earlier specs)."""
        n = {s: 0 for s in STATUSES}
        for r in self.conn.execute("SELECT status, COUNT(*) AS n FROM trials WHERE current=1 GROUP BY status"):
            n[r["status"]] = r["n"]
        n["stale"] = self.conn.execute("SELECT COUNT(*) FROM trials WHERE current=0").fetchone()[0]
        return n


def dataset_label(source: str) -> str:
    """A short dataset name for tables: ``synthetic:tiny`` stays, a folder becomes its base name."""
    s = str(source)
    return s if s.startswith("synthetic:") else (Path(s.rstrip("/")).name or s)
