"""Objectives: turn Representations and a batch into named, weighted loss terms.

A run's loss = objective terms + the model's own auxiliary terms + the model's L2 rule, so
"FREEDOM trained with BR-MRS" is a config (``objective=brmrs``), not a new class.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from modalrec.config.schema import RunConfig
from modalrec.data.dataset import Dataset
from modalrec.errors import ConfigError
from modalrec.models.base import Batch, Recommender, Representations
from modalrec.objectives.bpr import bpr_term
from modalrec.objectives.brmrs import BRMRSObjective
from modalrec.objectives.samplers import NegativeSampler


class Objective:
    """Base objective: plain BPR on one branch."""

    def __init__(self, cfg: RunConfig, model: Recommender, ds: Dataset, sampler: NegativeSampler):
        self.cfg, self.model, self.ds, self.sampler = cfg, model, ds, sampler
        w = cfg.loss.bpr_weight
        self.bpr_weight = 1.0 if w is None else w
        self.branch = cfg.loss.branch

    def prepare(self, batch: Batch, rng: np.random.Generator) -> None:
        """Attach what the loss needs beyond (u, i+, i-) (candidate pools, extra negatives)."""

    def __call__(self, reps: Representations, batch: Batch) -> dict[str, torch.Tensor]:
        if self.bpr_weight == 0:
            return {}
        if self.branch not in reps.users:
            raise ConfigError(f"loss.branch={self.branch!r} is not a branch of this model ({reps.branches})")
        return {"bpr": self.bpr_weight * bpr_term(reps, batch, self.branch)}


ObjectiveFactory = Callable[[RunConfig, Recommender, Dataset, NegativeSampler], Objective]
OBJECTIVES: dict[str, ObjectiveFactory] = {"bpr": Objective}
OBJECTIVES["brmrs"] = BRMRSObjective


def build_objective(cfg: RunConfig, model: Recommender, ds: Dataset, sampler: NegativeSampler) -> Objective:
    if "objective" not in cfg.model_fields_set and getattr(model, "default_objective", None):
        cfg = cfg.model_copy(update={"objective": model.default_objective})  # e.g. brmrs trains with brmrs
    if cfg.objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {cfg.objective!r}; choose from {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[cfg.objective](cfg, model, ds, sampler)


__all__ = ["OBJECTIVES", "NegativeSampler", "Objective", "bpr_term", "build_objective"]
