"""modalrec: multimodal recommendation that is correct, fast on a CPU and honest in evaluation."""

import os

# Bit-reproducible MKL results regardless of memory alignment (same seed => same numbers on CPU).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"

from modalrec.api import Run, evaluate, load_dataset, load_run, make_config, train  # noqa: E402
from modalrec.data.corrupt import corrupt  # noqa: E402
from modalrec.data.dataset import Dataset  # noqa: E402
from modalrec.errors import ModalrecError  # noqa: E402
from modalrec.evaluate.diagnostics import diagnose_run  # noqa: E402
from modalrec.experiments.runner import sweep  # noqa: E402
from modalrec.rectify.module import rectify  # noqa: E402

__all__ = [
    "Dataset",
    "ModalrecError",
    "Run",
    "__version__",
    "corrupt",
    "diagnose_run",
    "evaluate",
    "load_dataset",
    "load_run",
    "make_config",
    "rectify",
    "sweep",
    "train",
]
