"""Experiments: sweep specs, a parallel resumable runner, the SQLite results store, selection and reports."""

from modalrec.experiments.runner import run_sweep, sweep
from modalrec.experiments.spec import Spec, Trial, expand, load_spec, parse_spec
from modalrec.experiments.store import Store

__all__ = ["Spec", "Store", "Trial", "expand", "load_spec", "parse_spec", "run_sweep", "sweep"]
