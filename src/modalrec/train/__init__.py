"""Training: the loop, early stopping on validation, checkpoints and resume, the run directory."""

from modalrec.train.rundir import RunDir
from modalrec.train.trainer import Trainer, rank_reps, resolve_device

__all__ = ["RunDir", "Trainer", "rank_reps", "resolve_device"]
