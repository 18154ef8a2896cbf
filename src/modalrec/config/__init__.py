"""Typed run configuration: YAML files, ``key=value`` overrides, per-dataset overrides."""

from modalrec.config.loader import (
    apply_overrides,
    deep_merge,
    load_yaml,
    parse_overrides,
    resolve_config,
    validate_section,
)
from modalrec.config.schema import DataConfig, EvalConfig, LossConfig, RunConfig, TrainConfig

__all__ = [
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "deep_merge",
    "load_yaml",
    "parse_overrides",
    "resolve_config",
    "validate_section",
]
