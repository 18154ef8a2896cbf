"""Run a sweep's trials in parallel (spawned processes or Ray), skipping finished ones, recording each result.

Each trial is ``modalrec.train(model, source, seed, overrides, config=base, out=<study>/trials/<hash>)``.
Workers only compute; the driver is the single writer of ``results.sqlite`` and commits a trial in one
transaction once it has finished (done or failed), so an interrupted sweep loses nothing finished and
leaves no half-written result: rerunning the same command resumes.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import shutil
import socket
import subprocess
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any

from modalrec.errors import ConfigError
from modalrec.experiments.progress import SweepProgress
from modalrec.experiments.spec import Spec, Trial, expand, load_spec, spec_text
from modalrec.experiments.store import Store

log = logging.getLogger("modalrec.experiments")


# -- inside a worker --------------------------------------------------------------------------
def _reset_peak_rss() -> str:
    """Reset the kernel's peak-RSS mark so getrusage reports this trial's peak ('trial'), else 'process'."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return "trial"
    except OSError:
        return "process"


def software_versions() -> dict[str, str]:
    """Versions of the packages that determine a trial's numbers."""
    import numpy
    import scipy
    import torch

    from modalrec import __version__

    return {
        "modalrec": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


def _curve(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-epoch validation curve (epochs that were evaluated), with the training loss."""
    return [
        {"epoch": r["epoch"], "loss": r.get("loss"), "valid": r["valid"]}
        for r in history
        if isinstance(r.get("valid"), dict)
    ]


def _train(p: dict[str, Any], out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train (or resume, or just read back) the trial in ``out``; return (metrics, history)."""
    import json

    from modalrec.api import train
    from modalrec.train.rundir import RunDir

    rd = RunDir(out)
    if rd.metrics_file.exists():  # finished before the driver could record it (e.g. killed between the two)
        return json.loads(rd.metrics_file.read_text()), rd.read_history()
    args = dict(model=p["model"], data=p["data"], seed=p["seed"], overrides=p["overrides"], config=p["config"])
    if (rd.ckpt / "last.pt").exists():
        try:  # an interrupted attempt: continue from its last finished epoch
            run = train(**args, out=out, resume=True)
            return run.metrics, run.history
        except Exception as e:  # e.g. saved with another thread count: start over
            log.info("trial %s: cannot resume (%s); starting over", p["hash"], e)
    if out.exists():
        shutil.rmtree(out)
    run = train(**args, out=out)
    return run.metrics, run.history


def execute_trial(p: dict[str, Any]) -> dict[str, Any]:
    """Run one trial payload and return its result row; exceptions become a 'failed' result."""
    scope = _reset_peak_rss()
    t0 = time.time()
    mlog = logging.getLogger("modalrec")
    if mlog.level == logging.NOTSET:  # a fresh worker: keep INFO lines for the trial's log.txt
        mlog.setLevel(logging.INFO)
    res: dict[str, Any] = {
        "hash": p["hash"],
        "started": t0,
        "host": socket.gethostname(),
        "run_dir": p["out"],
        "git_commit": p.get("git_commit"),
        "rss_scope": scope,
    }
    try:
        res["versions"] = software_versions()
        metrics, history = _train(p, Path(p["out"]))
        res.update(
            status="done",
            valid=metrics.get("valid"),
            test=metrics.get("test"),
            best_epoch=metrics.get("best_epoch"),
            train_seconds=metrics.get("train_seconds"),
            curve=_curve(history),
        )
    except Exception as e:  # noqa: BLE001 - a failing trial is a result, the sweep goes on
        tb = traceback.format_exc(limit=-3)
        res.update(status="failed", error=f"{type(e).__name__}: {e}\n{tb}")
    res["finished"] = time.time()
    res["seconds"] = round(res["finished"] - t0, 3)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return res


# -- backends ---------------------------------------------------------------------------------
class InlineBackend:
    """Runs trials one at a time in this process (``workers=0``: debugging, profiling)."""

    capacity = 1

    def __init__(self) -> None:
        self.queue: deque[dict[str, Any]] = deque()

    @property
    def in_flight(self) -> int:
        return len(self.queue)

    def submit(self, payload: dict[str, Any]) -> None:
        self.queue.append(payload)

    def wait(self) -> list[dict[str, Any]]:
        return [execute_trial(self.queue.popleft())]

    def shutdown(self, cancel: bool = False) -> None:
        self.queue.clear()


class LocalBackend:
    """A pool of ``workers`` spawned processes (never fork: torch is not fork-safe)."""

    def __init__(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.capacity = workers
        self.pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_warm_up
        )
        self.futures: dict[Any, dict[str, Any]] = {}

    @property
    def in_flight(self) -> int:
        return len(self.futures)

    def submit(self, payload: dict[str, Any]) -> None:
        self.futures[self.pool.submit(execute_trial, payload)] = payload

    def wait(self) -> list[dict[str, Any]]:
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as fwait

        done, _ = fwait(list(self.futures), return_when=FIRST_COMPLETED)
        out = []
        for f in done:
            p = self.futures.pop(f)
            exc = f.exception()
            if isinstance(exc, KeyboardInterrupt):
                raise exc
            if exc is not None:  # the worker died (e.g. killed by the OOM killer)
                out.append(_crashed(p, exc))
            else:
                out.append(f.result())
        return out

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            for proc in list((getattr(self.pool, "_processes", None) or {}).values()):
                if proc.is_alive():
                    proc.terminate()  # our own workers: an interrupted trial is simply not recorded
        self.pool.shutdown(wait=not cancel, cancel_futures=True)
        self.futures.clear()


def _warm_up() -> None:
    """Worker start: leave Ctrl-C to the driver (it stops the pool), import the heavy modules once."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import modalrec.api  # noqa: F401
    import modalrec.models  # noqa: F401


def _crashed(p: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    now = time.time()
    return {
        "hash": p["hash"],
        "status": "failed",
        "error": f"worker crashed: {type(exc).__name__}: {exc}",
        "finished": now,
        "run_dir": p["out"],
        "git_commit": p.get("git_commit"),
    }


def make_backend(name: str, workers: int, address: str | None = None, threads: int = 1) -> Any:
    """``local`` (spawned processes; ``workers=0`` runs inline) or ``ray``."""
    if name == "local":
        return InlineBackend() if workers == 0 else LocalBackend(workers)
    if name == "ray":
        from modalrec.experiments.ray_backend import RayBackend

        return RayBackend(max(1, workers), address=address, threads=threads)
    raise ConfigError(f"unknown backend {name!r}; choose local or ray")


# -- the driver -------------------------------------------------------------------------------
def git_commit() -> str | None:
    """The git commit of the modalrec source tree (with '-dirty' when it has changes), if it is a checkout."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "") if head else None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _payload(t: Trial, study: Path, threads: int, commit: str | None) -> dict[str, Any]:
    ov = t.overrides()
    if "threads" not in ov and not t.base.get("threads"):
        ov["threads"] = threads
    source = t.source
    if not source.startswith("synthetic:") and not Path(source).is_absolute() and Path(source).exists():
        source = str(Path(source).resolve())  # workers (Ray's especially) may start in another directory
    return {
        "hash": t.hash,
        "model": t.model,
        "data": source,
        "seed": t.seed,
        "overrides": ov,
        "config": t.base,
        "out": str(study / "trials" / t.hash),
        "git_commit": commit,
    }


def run_sweep(
    spec: str | Path | Spec,
    study_dir: str | Path,
    workers: int = 2,
    backend: str = "local",
    address: str | None = None,
    limit: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Expand ``spec``, register its trials in ``study_dir/results.sqlite`` and run the unfinished ones.

    ``limit`` runs at most that many trials (then stops: rerun to continue). Failed trials are kept
    as failed unless ``retry_failed``. Returns counts: total, skipped, ran, done, failed.
    """
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    if workers < 0:
        raise ConfigError(f"--workers must be >= 0 (0 runs trials in this process), got {workers}")
    trials = expand(spec)  # validates every config before anything runs
    study = Path(study_dir).resolve()
    threads = threads or max(1, available_cores() // max(1, workers))
    with Store(study) as store:
        store.set_meta(name=spec.name, spec=spec_text(spec), spec_path=spec.source, swept_keys=spec.swept_keys)
        store.add_trials(trials)
        store.reset_running()
        status = store.statuses()
        wanted = ("pending", "failed") if retry_failed else ("pending",)
        todo = [t for t in trials if status[t.hash] in wanted]
        skipped = len(trials) - len(todo)
        if limit is not None:
            todo = todo[: max(0, limit)]
        commit = git_commit()
        queue = deque(_payload(t, study, threads, commit) for t in todo)
        labels = {t.hash: " ".join(f"{k}={v}" for k, v in t.swept.items()) for t in todo}
        counts = {"total": len(trials), "skipped": skipped, "ran": 0, "done": 0, "failed": 0}
        if not queue:
            return counts
        be = make_backend(backend, workers, address, threads)
        cancel = False
        try:
            with SweepProgress(len(trials), skipped, max(1, workers), enabled=progress, title=spec.name) as prog:
                while queue or be.in_flight:
                    while queue and be.in_flight < be.capacity:
                        p = queue.popleft()
                        store.mark_running(p["hash"], host=socket.gethostname())
                        be.submit(p)
                        prog.start(p["hash"])
                    for res in be.wait():
                        store.record(res)
                        counts["ran"] += 1
                        counts[res["status"]] += 1
                        prog.finish(res["hash"], res["status"], res.get("seconds"), labels.get(res["hash"], ""))
        except BaseException:
            cancel = True
            raise
        finally:
            be.shutdown(cancel=cancel)
            store.reset_running()
    return counts


def sweep(
    spec_path: str | Path | Spec, study_dir: str | Path, workers: int = 2, backend: str = "local", **kwargs: Any
) -> dict[str, Any]:
    """Run a sweep spec into a study directory (see ``run_sweep`` for the keyword arguments)."""
    return run_sweep(spec_path, study_dir, workers=workers, backend=backend, **kwargs)
