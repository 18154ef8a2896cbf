"""Shared fixtures: small synthetic data, a private cache dir, and the shared real-data folder."""

from __future__ import annotations

import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # before torch loads MKL: alignment-independent results

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.exists():
    SHARED = Path(os.environ.get("MODALREC_SHARED_DATA", "/nonexistent"))


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MODALREC_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny():
    from modalrec.data.synthetic import generate

    return generate("tiny", seed=0)


def shared_data(name: str) -> Path:
    p = SHARED / name
    if not p.exists():
        pytest.skip(f"shared dataset {name} not available at {p}")
    return p
