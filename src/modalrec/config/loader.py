"""Load YAML, apply ``key=value`` overrides, and validate with helpful messages."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from modalrec.config.schema import RunConfig
from modalrec.errors import ConfigError


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file and line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def deep_merge(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``other`` into a copy of ``base`` (other wins)."""
    out = copy.deepcopy(base)
    for k, v in other.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``["train.lr=1e-3", "eval.topk=[10,20]"]`` into a dotted-key dict (values as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.lr=0.001)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[key.strip()] = value
    return out


def apply_overrides(cfg: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``a.b.c``) in a copy of a nested dict."""
    out = copy.deepcopy(cfg)
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = {}
                node[p] = nxt
            node = nxt
        node[parts[-1]] = value
    return out


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid field names of the (sub)model at ``loc`` (for suggestions)."""
    cur: Any = model
    for part in loc[:-1]:
        fields = getattr(cur, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        cur = next((a for a in getattr(ann, "__args__", (ann,)) if hasattr(a, "model_fields")), ann)
    return list(getattr(cur, "model_fields", {}))


def validate_section(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> Any:
    """Validate ``data`` against ``model``; raise ConfigError naming the key and a suggestion."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        key = prefix + ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            valid = _fields_at(model, loc)
            near = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"; did you mean {prefix + '.'.join([*map(str, loc[:-1]), near[0]])}?" if near else ""
            raise ConfigError(f"unknown config key {key!r}{hint} (valid here: {', '.join(valid)})") from None
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid value for {key!r}: {msg} (got {err.get('input')!r})") from None


def resolve_config(
    file_cfg: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    dataset_name: str | None = None,
) -> RunConfig:
    """Defaults < YAML file < file's per_dataset[dataset_name] < command-line overrides."""
    raw = copy.deepcopy(file_cfg or {})
    if dataset_name and isinstance(raw.get("per_dataset"), dict) and dataset_name in raw["per_dataset"]:
        raw = apply_overrides(raw, _flatten(raw["per_dataset"][dataset_name]))
    raw = apply_overrides(raw, overrides or {})
    return validate_section(RunConfig, raw)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
