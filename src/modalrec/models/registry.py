"""Model registry: names -> classes, with parameter resolution (defaults < per-dataset < config)."""

from __future__ import annotations

import difflib
from typing import Any

import torch

from modalrec.config.loader import validate_section
from modalrec.data.dataset import Dataset
from modalrec.errors import ConfigError, DataError
from modalrec.models.base import Params, Recommender

_REGISTRY: dict[str, type[Recommender]] = {}


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: make a model available under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[Recommender]:
    if name not in _REGISTRY:
        near = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"unknown model {name!r}{hint} (available: {', '.join(model_names())})")
    return _REGISTRY[name]


def resolve_params(name: str, ds_name: str | None, params: dict[str, Any]) -> Params:
    """Model defaults < the model's published per-dataset defaults < the run's params."""
    cls = get_model_class(name)
    merged = {**cls.dataset_defaults.get((ds_name or "").lower(), {}), **params}
    return validate_section(cls.Params, merged, prefix="params.")


def build_model(name: str, ds: Dataset, params: dict[str, Any], device: torch.device | str = "cpu") -> Recommender:
    cls = get_model_class(name)
    if cls.needs_features and not ds.features:
        raise DataError(
            f"model {name!r} needs item features but dataset {ds.name!r} has none; "
            f"add .npy files (data.features) or choose bpr/lightgcn"
        )
    p = resolve_params(name, ds.name, params)
    return cls(ds, p, device).to(device)


def describe_models() -> list[dict[str, Any]]:
    """Name, paper, year, branches and defaults of every registered model."""
    out = []
    for n in model_names():
        cls = _REGISTRY[n]
        out.append(
            {
                "name": n,
                "paper": cls.paper,
                "year": cls.year,
                "branches": cls.branch_doc,
                "multimodal": cls.needs_features,
                "defaults": cls.Params().model_dump(),
            }
        )
    return out
