"""Anchors (trust paper, Eq. 5): LightGCN item embeddings (mean over layers) trained on the training graph,
L2-normalised; cached by a hash of the interactions and the training parameters."""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
import torch

from modalrec.data.dataset import Dataset
from modalrec.io import cache_dir, hash_arrays, load_npy, save_npy


def lightgcn_embeddings(
    ds: Dataset,
    dim: int = 64,
    n_layers: int = 3,
    epochs: int = 50,
    seed: int = 0,
    threads: int | None = None,
    cache: bool = True,
    lr: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) embeddings of a LightGCN trained with ``modalrec.train`` (best validation epoch).

    lr defaults to 0.01 (not LightGCN's 1e-3): the prior gets tens of epochs, not a thousand.
    """
    params = {"dim": dim, "n_layers": n_layers, "epochs": epochs, "seed": seed, "lr": lr}
    key = hash_arrays("lightgcn-emb", ds.n_users, ds.n_items, ds.train, ds.graph, ds.valid, params)
    path_u, path_i = cache_dir() / f"lgcn-{key}-users.npy", cache_dir() / f"lgcn-{key}-items.npy"
    if cache and path_u.exists() and path_i.exists():
        return load_npy(path_u), load_npy(path_i)
    from modalrec.api import train

    overrides: dict[str, Any] = {
        "params.dim": dim,
        "params.n_layers": n_layers,
        "train.epochs": epochs,
        "train.lr": lr,
        "train.checkpoint": False,
        "eval.topk": [20],
        "eval.metrics": ["recall"],
        "device": "cpu",
    }
    if threads:
        overrides["threads"] = threads
    bare = ds.replace(features={}, extras={})  # the anchor model sees interactions only
    with tempfile.TemporaryDirectory(prefix="modalrec-lgcn-") as tmp:
        run = train("lightgcn", bare, seed=seed, overrides=overrides, out=tmp)
        run.model.eval()
        with torch.no_grad():
            reps = run.model.ranking_representations()  # LightGCN: mean over layers 0..L (Eq. 5)
            users = reps.all_users("fused").cpu().numpy().astype(np.float32)
            items = reps.all_items("fused").cpu().numpy().astype(np.float32)
    if cache:
        save_npy(path_u, users)
        save_npy(path_i, items)
    return users, items


def train_anchors(
    ds: Dataset,
    dim: int = 64,
    n_layers: int = 3,
    epochs: int = 50,
    seed: int = 0,
    threads: int | None = None,
    cache: bool = True,
    lr: float = 0.01,
) -> np.ndarray:
    """L2-normalised anchor item embeddings [n_items, dim] (Eq. 5 and its normalisation)."""
    _, items = lightgcn_embeddings(ds, dim, n_layers, epochs, seed, threads, cache, lr)
    norm = np.linalg.norm(items, axis=1, keepdims=True)
    return (items / np.maximum(norm, 1e-12)).astype(np.float32)
