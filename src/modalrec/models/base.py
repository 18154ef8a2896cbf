"""The model contract: a Recommender computes Representations; objectives turn them into losses.

Representations hold, per branch, a user table and an item table; ``score(u, i, branch)`` is their
dot product. "fused" is always present and used for ranking; models with modality branches add
one per modality (named as in the dataset: "image", "text", "audio", ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from modalrec.data.dataset import Dataset


class Params(BaseModel):
    """Base for model hyper-parameters: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


class LazyItems:
    """A user or item table computed on demand for the requested rows (a projection of raw
    features, a row-wise fusion of views, ...).

    Training touches only the batch's rows; ranking calls ``full()`` once per evaluation.
    """

    def __init__(self, fn: Callable[[torch.Tensor | None], torch.Tensor], n: int):
        self.fn = fn
        self.n = n

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        uniq, inv = torch.unique(idx, return_inverse=True)
        return self.fn(uniq)[inv]

    def full(self) -> torch.Tensor:
        return self.fn(None)


Table = torch.Tensor | LazyItems


@dataclass
class Batch:
    """BPR triples plus whatever objectives attach (candidate pools, extra negatives)."""

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class Representations:
    """Per-branch user and item tables (see module docstring)."""

    users: dict[str, Table]
    items: dict[str, Table]
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def branches(self) -> list[str]:
        return list(self.users)

    def user(self, branch: str, idx: torch.Tensor) -> torch.Tensor:
        t = self.users[branch]
        return t.take(idx) if isinstance(t, LazyItems) else t[idx]

    def all_users(self, branch: str) -> torch.Tensor:
        t = self.users[branch]
        return t.full() if isinstance(t, LazyItems) else t

    def item(self, branch: str, idx: torch.Tensor) -> torch.Tensor:
        t = self.items[branch]
        return t.take(idx) if isinstance(t, LazyItems) else t[idx]

    def items_at(self, branch: str, *idx: torch.Tensor) -> list[torch.Tensor]:
        """Item rows for several index tensors, computing lazy tables once for their union."""
        t = self.items[branch]
        if not isinstance(t, LazyItems):
            return [t[i] for i in idx]
        sizes = [i.numel() for i in idx]
        rows = t.take(torch.cat([i.reshape(-1) for i in idx]))
        return [r.reshape(*i.shape, -1) for r, i in zip(rows.split(sizes), idx)]

    def all_items(self, branch: str) -> torch.Tensor:
        t = self.items[branch]
        return t.full() if isinstance(t, LazyItems) else t

    def score(self, branch: str, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """<user, item> for aligned index tensors (items may be [B, P] for pools)."""
        u = self.user(branch, users)
        it = self.item(branch, items)
        if it.dim() == 3:
            return torch.einsum("bd,bpd->bp", u, it)
        return (u * it).sum(-1)

    def detached(self) -> Representations:
        """Fully materialised, gradient-free copy (used for ranking and diagnostics)."""
        users = {b: self.all_users(b).detach() for b in self.users}
        items = {b: self.all_items(b).detach() for b in self.items}
        return Representations(users, items, {})


class Recommender(nn.Module):
    """Base class: subclasses set the metadata below and implement ``forward``."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    year: ClassVar[int] = 0
    Params: ClassVar[type[Params]] = Params
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    needs_features: ClassVar[bool] = False
    branch_doc: ClassVar[str] = "fused: the model's ranking score"

    def __init__(self, ds: Dataset, params: Params, device: torch.device | str = "cpu"):
        super().__init__()
        self.n_users, self.n_items = ds.n_users, ds.n_items
        self.p = params
        self.device_ = torch.device(device)

    def forward(self) -> Representations:  # pragma: no cover - abstract
        raise NotImplementedError

    def branch_names(self, ds: Dataset) -> list[str]:
        """The branches this model exposes on ``ds`` ("fused" first)."""
        return ["fused"]

    def aux_losses(self, reps: Representations, batch: Batch) -> dict[str, torch.Tensor]:
        """The model's own extra terms (contrastive, alignment, ...), already weighted."""
        return {}

    def reg_loss(self, reps: Representations, batch: Batch) -> torch.Tensor | None:
        """The model's L2 rule (None when it has none)."""
        return None

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Per-epoch work (graph resampling, ...)."""

    def ranking_representations(self) -> Representations:
        """One forward in eval mode, materialised for ranking."""
        return self.forward().detached()


def l2_rule(*tensors: torch.Tensor) -> torch.Tensor:
    """Half the summed squares of the batch embeddings divided by the batch size."""
    b = tensors[0].shape[0]
    return sum(t.pow(2).sum() for t in tensors) / (2.0 * b)


def init_embedding(n: int, d: int) -> nn.Parameter:
    w = torch.empty(n, d)
    nn.init.xavier_normal_(w)
    return nn.Parameter(w)
