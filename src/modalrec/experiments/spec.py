"""Sweep specs: parse the YAML, expand axes/zip/exclude into trials, hash each resolved config."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modalrec.config.loader import load_yaml
from modalrec.errors import ConfigError

TOP_KEYS = ("name", "base", "axes", "zip", "exclude", "report")
REPORT_KEYS = ("metric", "method", "baseline", "tables", "figures", "ablation")
FIGURE_KEYS = ("x", "y", "line", "split", "title")
TABLES = ("overall", "delta", "ablation")
# Keys that do not change what a trial computes (threads is set per worker by the runner).
UNHASHED = ("threads",)


@dataclass
class ReportSpec:
    """How `modalrec report` selects, names and plots (spec section ``report``)."""

    metric: str = "recall@20"
    method: list[str] = field(default_factory=lambda: ["model"])
    baseline: str | None = None
    tables: list[str] = field(default_factory=lambda: ["overall", "delta", "ablation"])
    figures: list[dict[str, Any]] = field(default_factory=list)
    ablation: list[str] | None = None


@dataclass
class Spec:
    """A parsed sweep spec."""

    name: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    zip: list[dict[str, list[Any]]]
    exclude: list[dict[str, Any]]
    report: ReportSpec
    source: str = "<dict>"

    @property
    def swept_keys(self) -> list[str]:
        """Every dotted key that varies across trials (axes first, then zip groups)."""
        keys = list(self.axes)
        for group in self.zip:
            keys += [k for k in group if k not in keys]
        return keys


@dataclass
class Trial:
    """One fully resolved run of a sweep."""

    hash: str
    swept: dict[str, Any]  # the dotted key -> value choices that define this trial
    config: dict[str, Any]  # the resolved RunConfig (JSON form), without unhashed keys
    base: dict[str, Any]

    @property
    def model(self) -> str:
        return self.config["model"]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def source(self) -> str:
        return self.config["data"]["source"]

    def overrides(self) -> dict[str, Any]:
        """Dotted overrides for ``modalrec.train`` (model, seed and data.source go as explicit arguments)."""
        return {k: v for k, v in self.swept.items() if k not in ("model", "seed", "data.source")}


def _where(src: str, key: str) -> str:
    return f"{src}: {key}"


def parse_spec(data: dict[str, Any], source: str = "<dict>") -> Spec:
    """Check the spec's structure (top-level keys, list shapes) and build a Spec."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a sweep spec must be a mapping with keys {', '.join(TOP_KEYS)}")
    bad = [k for k in data if k not in TOP_KEYS]
    if bad:
        raise ConfigError(f"{source}: unknown spec key {bad[0]!r} (valid: {', '.join(TOP_KEYS)})")
    name = str(data.get("name") or Path(source).stem)
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{_where(source, 'base')} must be a mapping (a run config)")
    axes = data.get("axes") or {}
    if not isinstance(axes, dict):
        raise ConfigError(f"{_where(source, 'axes')} must map dotted keys to lists of values")
    for k, v in axes.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"{_where(source, f'axes.{k}')} must be a non-empty list, e.g. {k}: [a, b]")
    groups = data.get("zip") or []
    if not isinstance(groups, list):
        raise ConfigError(f"{_where(source, 'zip')} must be a list of groups ({{key: [values], ...}})")
    for gi, g in enumerate(groups):
        if not isinstance(g, dict) or not g:
            raise ConfigError(f"{_where(source, f'zip[{gi}]')} must be a mapping of dotted keys to lists")
        lens = {k: len(v) if isinstance(v, list) else -1 for k, v in g.items()}
        if min(lens.values()) < 1 or len(set(lens.values())) != 1:
            raise ConfigError(
                f"{_where(source, f'zip[{gi}]')}: lists in a zip group must be non-empty and of equal length "
                f"(got lengths {lens})"
            )
    seen: dict[str, str] = {}
    for where, keys in [("axes", list(axes))] + [(f"zip[{i}]", list(g)) for i, g in enumerate(groups)]:
        for k in keys:
            if k in seen:
                raise ConfigError(f"{source}: key {k!r} is swept twice ({seen[k]} and {where})")
            seen[k] = where
    exclude = data.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, dict) for e in exclude):
        raise ConfigError(f"{_where(source, 'exclude')} must be a list of {{key: value}} mappings")
    rep = data.get("report") or {}
    if not isinstance(rep, dict):
        raise ConfigError(f"{_where(source, 'report')} must be a mapping")
    bad = [k for k in rep if k not in REPORT_KEYS]
    if bad:
        raise ConfigError(f"{source}: unknown key 'report.{bad[0]}' (valid: {', '.join(REPORT_KEYS)})")
    for i, f in enumerate(rep.get("figures") or []):
        bad = [k for k in f if k not in FIGURE_KEYS] if isinstance(f, dict) else ["<not a mapping>"]
        if bad or "x" not in f:
            raise ConfigError(
                f"{source}: report.figures[{i}] needs x and may have {', '.join(FIGURE_KEYS)} (bad: {bad or 'no x'})"
            )
    bad = [t for t in rep.get("tables") or [] if t not in TABLES]
    if bad:
        raise ConfigError(f"{source}: unknown table {bad[0]!r} in report.tables (valid: {', '.join(TABLES)})")
    method = rep.get("method", ["model"])
    report = ReportSpec(
        metric=str(rep.get("metric", "recall@20")),
        method=[method] if isinstance(method, str) else list(method),
        baseline=rep.get("baseline"),
        tables=list(rep.get("tables", ["overall", "delta", "ablation"])),
        figures=list(rep.get("figures") or []),
        ablation=rep.get("ablation"),
    )
    return Spec(name, base, dict(axes), list(groups), list(exclude), report, source)


def load_spec(path: str | Path) -> Spec:
    """Read and structurally check a sweep spec YAML file."""
    return parse_spec(load_yaml(path), str(path))


def config_hash(config: dict[str, Any]) -> str:
    """A stable 16-hex id of a resolved config (sorted-key JSON; unhashed keys such as threads dropped)."""
    clean = {k: v for k, v in config.items() if k not in UNHASHED}
    blob = json.dumps(clean, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _combinations(spec: Spec) -> list[dict[str, Any]]:
    """Cartesian product over axes and zip groups (each zip group is one axis of tuples)."""
    dims: list[list[dict[str, Any]]] = [[{k: v} for v in vals] for k, vals in spec.axes.items()]
    for g in spec.zip:
        keys = list(g)
        dims.append([dict(zip(keys, row)) for row in zip(*(g[k] for k in keys))])
    out = []
    for combo in itertools.product(*dims):
        d: dict[str, Any] = {}
        for part in combo:
            d.update(part)
        out.append(d)
    return out


def _matches(swept: dict[str, Any], resolved: dict[str, Any], rule: dict[str, Any]) -> bool:
    """True when every key/value of an exclude rule holds for this trial."""
    for k, v in rule.items():
        if k in swept:
            if swept[k] != v:
                return False
            continue
        node: Any = resolved
        for part in k.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        if node != v:
            return False
    return True


def resolve_trial(spec: Spec, swept: dict[str, Any]) -> dict[str, Any]:
    """The fully resolved RunConfig (JSON form) of one combination; unknown keys raise ConfigError."""
    import modalrec.models  # noqa: F401  (registers models so params can be validated)
    from modalrec.api import make_config
    from modalrec.models.registry import resolve_params

    ov = {k: v for k, v in swept.items() if k not in ("model", "seed", "data.source")}
    try:
        cfg = make_config(swept.get("model"), swept.get("data.source"), swept.get("seed"), ov, copy.deepcopy(spec.base))
        resolve_params(cfg.model, None, cfg.params)  # unknown model or params.* key fails here, before any run
    except ConfigError as e:
        where = ", ".join(f"{k}={v}" for k, v in swept.items()) or "base"
        raise ConfigError(f"{spec.source}: trial ({where}): {e}") from None
    return cfg.model_dump(mode="json")


def expand(spec: Spec) -> list[Trial]:
    """All trials of a spec, excluded ones removed, every config validated; order follows the spec."""
    trials: list[Trial] = []
    seen: set[str] = set()
    for swept in _combinations(spec):
        resolved = resolve_trial(spec, swept)
        if any(_matches(swept, resolved, rule) for rule in spec.exclude):
            continue
        h = config_hash(resolved)
        if h in seen:  # two combinations that resolve to the same config are one trial
            continue
        seen.add(h)
        trials.append(Trial(h, swept, {k: v for k, v in resolved.items() if k not in UNHASHED}, spec.base))
    if not trials:
        raise ConfigError(f"{spec.source}: the spec expands to no trials (check axes and exclude)")
    return trials


def spec_text(spec: Spec) -> str:
    """The spec as YAML (stored with the study for provenance)."""
    return yaml.safe_dump(
        {
            "name": spec.name,
            "base": spec.base,
            "axes": spec.axes,
            "zip": spec.zip,
            "exclude": spec.exclude,
            "report": spec.report.__dict__,
        },
        sort_keys=False,
    )
