"""The run directory: config.yaml, history.jsonl, metrics.json, checkpoint/, log.txt, topk.tsv."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import yaml

from modalrec.errors import ModalrecError
from modalrec.io import atomic_path, write_json, write_text


class RunDir:
    """Paths and atomic writers for one run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.ckpt = self.path / "checkpoint"

    def create(self) -> RunDir:
        self.ckpt.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def history_file(self) -> Path:
        return self.path / "history.jsonl"

    def write_config(self, cfg: dict[str, Any]) -> None:
        write_text(self.config_file, yaml.safe_dump(cfg, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        if not self.config_file.exists():
            raise ModalrecError(f"{self.path} is not a run directory (no config.yaml); give the --out of a train run")
        return yaml.safe_load(self.config_file.read_text(encoding="utf-8")) or {}

    def append_history(self, row: dict[str, Any]) -> None:
        with open(self.history_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")

    def read_history(self) -> list[dict[str, Any]]:
        if not self.history_file.exists():
            return []
        return [json.loads(x) for x in self.history_file.read_text(encoding="utf-8").splitlines() if x.strip()]

    def truncate_history(self, last_epoch: int) -> None:
        """Keep rows up to ``last_epoch`` (used when resuming)."""
        rows = [r for r in self.read_history() if r.get("epoch", -1) <= last_epoch]
        write_text(self.history_file, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.metrics_file, metrics)

    def save(self, name: str, obj: dict[str, Any]) -> None:
        with atomic_path(self.ckpt / name) as tmp:
            torch.save(obj, tmp)

    def load(self, name: str) -> dict[str, Any]:
        p = self.ckpt / name
        if not p.exists():
            raise ModalrecError(f"{p} does not exist; was the run trained with train.checkpoint=true?")
        return torch.load(p, map_location="cpu", weights_only=True)

    def attach_log(self) -> logging.Handler:
        handler = logging.FileHandler(self.path / "log.txt", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("modalrec").addHandler(handler)
        return handler
