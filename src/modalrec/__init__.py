"""modalrec: multimodal recommendation that is correct, fast on a CPU and honest in evaluation."""

import os

# Bit-reproducible MKL results regardless of memory alignment (same seed => same numbers on CPU).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"

from modalrec.api import Run, evaluate, load_dataset, load_run, make_config, train  # noqa: E402
from modalrec.data.dataset import Dataset  # noqa: E402
from modalrec.errors import ModalrecError  # noqa: E402

__all__ = [
    "Dataset",
    "ModalrecError",
    "Run",
    "__version__",
    "evaluate",
    "load_dataset",
    "load_run",
    "make_config",
    "train",
]
