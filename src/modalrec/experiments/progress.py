"""Live sweep progress (rich): trials done / running / failed and an ETA from the mean trial time."""

from __future__ import annotations

import sys
import time
from typing import Any


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class SweepProgress:
    """Tracks a sweep's counts; renders a rich live line on a terminal, one plain line per trial otherwise."""

    def __init__(self, total: int, skipped: int = 0, workers: int = 1, enabled: bool = True, title: str = "sweep"):
        self.total, self.skipped, self.workers, self.title = total, skipped, max(1, workers), title
        self.done = self.failed = 0
        self.running: dict[str, float] = {}
        self.durations: list[float] = []
        self.t0 = time.time()
        self.enabled = enabled
        self.live: Any = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self.render(), console=Console(stderr=True), refresh_per_second=4, transient=False)

    # -- counts ---------------------------------------------------------------------------
    @property
    def remaining(self) -> int:
        return self.total - self.skipped - self.done - self.failed

    def eta(self) -> float | None:
        """Seconds left: remaining trials x mean trial time / parallel workers (None before the first trial)."""
        if not self.durations:
            return None
        return self.remaining * (sum(self.durations) / len(self.durations)) / self.workers

    def line(self) -> str:
        eta = self.eta()
        skipped = f" ({self.skipped} earlier)" if self.skipped else ""
        return (
            f"{self.title} {self.done + self.skipped}/{self.total} done{skipped} · {len(self.running)} running · "
            f"{self.failed} failed · {_fmt_seconds(time.time() - self.t0)} · "
            f"ETA {_fmt_seconds(eta) if eta is not None else '?'}"
        )

    def render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        t = Table.grid(padding=(0, 1))
        t.add_row(
            ProgressBar(total=max(1, self.total), completed=self.done + self.skipped + self.failed, width=20),
            self.line(),
        )
        return t

    # -- events ---------------------------------------------------------------------------
    def __enter__(self) -> SweepProgress:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.stop()

    def start(self, h: str) -> None:
        self.running[h] = time.time()
        self._refresh()

    def finish(self, h: str, status: str, seconds: float | None = None, label: str = "") -> None:
        t = self.running.pop(h, None)
        self.durations.append(seconds if seconds is not None else (time.time() - t if t else 0.0))
        if status == "done":
            self.done += 1
        else:
            self.failed += 1
        if self.live is not None:
            if status != "done":
                self.live.console.print(f"[red]failed[/red] {h} {label}")
            self._refresh()
        elif self.enabled:
            print(f"[{status}] {h} {label} | {self.line()}", file=sys.stderr, flush=True)

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())
