"""Models: one module per model; importing this package registers them all."""

from modalrec.models import (  # noqa: F401  (registration)
    bpr,
    brmrs,
    dragon,
    dualgnn,
    freedom,
    grcn,
    lattice,
    lightgcn,
    mgcn,
    miggt,
    mmgcn,
    smore,
    vbpr,
)
from modalrec.models.base import Batch, LazyItems, Params, Recommender, Representations
from modalrec.models.registry import build_model, describe_models, get_model_class, model_names, register

__all__ = [
    "Batch",
    "LazyItems",
    "Params",
    "Recommender",
    "Representations",
    "build_model",
    "describe_models",
    "get_model_class",
    "model_names",
    "register",
]
