"""Ray backend: the same trial payloads as the local pool, run as Ray tasks (``pip install modalrec[ray]``).

``address=None`` starts a local Ray instance sized to ``workers x threads`` CPUs; an address (``auto``,
``ray://host:10001``, ``host:6379``) joins a cluster. Trials write their run directories under the study
folder, so on a cluster the study folder must be on a shared filesystem; results come back to the driver,
which alone writes ``results.sqlite``.
"""

from __future__ import annotations

from typing import Any

from modalrec.errors import ModalrecError


class RayBackend:
    """Keeps up to ``workers`` trials in flight as Ray tasks of ``threads`` CPUs each."""

    def __init__(self, workers: int, address: str | None = None, threads: int = 1):
        try:
            import ray
        except ImportError:
            raise ModalrecError("--backend ray needs Ray: pip install 'modalrec[ray]'") from None
        from modalrec.experiments.runner import execute_trial

        self.ray = ray
        self.capacity = workers
        self.started_here = not ray.is_initialized()
        if self.started_here:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers * threads, include_dashboard=False, log_to_driver=False)
        self.remote = ray.remote(num_cpus=threads, max_retries=0)(execute_trial)
        self.refs: dict[Any, dict[str, Any]] = {}

    @property
    def in_flight(self) -> int:
        return len(self.refs)

    def submit(self, payload: dict[str, Any]) -> None:
        self.refs[self.remote.remote(payload)] = payload

    def wait(self) -> list[dict[str, Any]]:
        from modalrec.experiments.runner import _crashed

        ready, _ = self.ray.wait(list(self.refs), num_returns=1)
        out = []
        for ref in ready:
            p = self.refs.pop(ref)
            try:
                out.append(self.ray.get(ref))
            except Exception as e:  # noqa: BLE001 - the task's worker died; record and go on
                out.append(_crashed(p, e))
        return out

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            for ref in list(self.refs):
                self.ray.cancel(ref, force=True)
        self.refs.clear()
        if self.started_here:
            self.ray.shutdown()
