"""Raw data -> MMRec-layout datasets: spec, filters, reindexing, splits, encoders, downloads."""

from modalrec.data.build.pipeline import build
from modalrec.data.build.spec import BuildSpec, load_spec, parse_spec

__all__ = ["BuildSpec", "build", "load_spec", "parse_spec"]
