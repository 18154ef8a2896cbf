"""Robust modality-to-anchor projection (trust paper, Eq. 6-8): a linear map trained with 1 - cos and
small-loss selection that keeps the ceil(rho * B) lowest-loss items of every mini-batch."""

from __future__ import annotations

import math

import numpy as np
import torch


def keep_count(batch: int, rho: float) -> int:
    """|B_keep| = ceil(rho * B), at least 1 and at most B (a tiny slack absorbs float error, e.g. 0.3*10)."""
    return int(min(batch, max(1, math.ceil(rho * batch - 1e-9))))


def small_loss_mean(losses: torch.Tensor, rho: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 8: mean of the ceil(rho B) smallest losses; returns (loss, kept indices)."""
    n_keep = keep_count(losses.shape[0], rho)
    kept = torch.topk(losses.detach(), n_keep, largest=False).indices
    return losses[kept].mean(), kept


def standardize(x: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-variance columns (an affine reparametrisation: g_m stays linear in the raw features)."""
    x = np.asarray(x, dtype=np.float32)
    mu = x.mean(axis=0, keepdims=True)
    sd = x.std(axis=0, keepdims=True)
    return (x - mu) / np.where(sd > 1e-8, sd, 1.0)


def train_projection(
    features: np.ndarray,
    anchors: np.ndarray,
    rho: float | None = 0.75,
    epochs: int = 50,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    weight_decay: float = 0.0,
) -> tuple[np.ndarray, dict[str, float]]:
    """Fit z_i = g_m(e_i^m) (Eq. 6) to the normalised anchors with loss 1 - cos (Eq. 7); ``rho=None``
    trains on the full batch ("w/o SL"). Returns the L2-normalised projections [N, d] and final losses."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(standardize(features))
    target = torch.nn.functional.normalize(torch.as_tensor(np.asarray(anchors, dtype=np.float32)), dim=1)
    n, d_in = x.shape
    layer = torch.nn.Linear(d_in, target.shape[1])
    with torch.no_grad():
        w = torch.randn(layer.weight.shape, generator=gen) / math.sqrt(d_in)
        layer.weight.copy_(w)
        layer.bias.zero_()
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    last = float("nan")
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        tot, cnt = 0.0, 0
        for s in range(0, n, batch_size):
            b = order[s : s + batch_size]
            z = torch.nn.functional.normalize(layer(x[b]), dim=1)
            losses = 1.0 - (z * target[b]).sum(1)  # Eq. 7
            loss = losses.mean() if rho is None else small_loss_mean(losses, rho)[0]  # Eq. 8
            opt.zero_grad()
            (loss + weight_decay * layer.weight.square().sum() if weight_decay else loss).backward()
            opt.step()
            tot += float(loss.detach()) * len(b)
            cnt += len(b)
        last = tot / max(cnt, 1)
    with torch.no_grad():
        z = torch.nn.functional.normalize(layer(x), dim=1)
        all_losses = 1.0 - (z * target).sum(1)
    info = {"train_loss": last, "mean_loss_all": float(all_losses.mean())}
    return z.numpy(), info
