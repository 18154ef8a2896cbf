"""The Python API: load_dataset, train, evaluate, recommend (the CLI is a thin layer over this)."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modalrec.config import RunConfig, load_yaml, parse_overrides, resolve_config
from modalrec.config.loader import apply_overrides
from modalrec.data.dataset import Dataset
from modalrec.data.mmrec import read_mmrec
from modalrec.data.synthetic import generate
from modalrec.errors import ModalrecError
from modalrec.evaluate.ranking import _rows
from modalrec.io import write_json
from modalrec.models.base import Recommender
from modalrec.models.registry import build_model, get_model_class, resolve_params
from modalrec.train.rundir import RunDir
from modalrec.train.trainer import Trainer, rank_reps, resolve_device

log = logging.getLogger("modalrec")


def load_dataset(
    source: str | Path = "synthetic:small",
    features: dict[str, str] | None = None,
    inter: str | None = None,
    n_items: int | None = None,
    seed: int = 0,
) -> Dataset:
    """A preset (``synthetic:tiny|small|baby|electronics``) or a folder / ``.inter`` file in the MMRec layout."""
    s = str(source)
    if s.startswith("synthetic:"):
        return generate(s.split(":", 1)[1], seed=seed)
    return read_mmrec(s, features=features, inter=inter, n_items=n_items)


def prepare_dataset(cfg: RunConfig, ds: Dataset | None = None) -> Dataset:
    """Load the configured data (unless given) and apply the run's data transformations."""
    if ds is None:
        d = cfg.data
        ds = load_dataset(d.source, d.features, d.inter, d.n_items, d.seed)
    if cfg.data.normalize != "none":
        from modalrec.data.features import normalize_features

        ds = normalize_features(ds, cfg.data.normalize)
    # Trust transformations, in this order: stress -> rectify -> edit (each returns a new Dataset).
    st = cfg.stress
    if any(r > 0 for r in st.feature_permute.values()) or st.edges:
        from modalrec.data.corrupt import apply_stress

        ds, _ = apply_stress(ds, st.feature_permute, st.edges, st.seed)
    if cfg.rectify.enabled:
        from modalrec.rectify.module import rectify_dataset

        ds, _ = rectify_dataset(ds, cfg.rectify, threads=cfg.threads)
    if cfg.edit.op is not None:
        from modalrec.graphs.edit import edit_dataset

        e = cfg.edit
        ds, _ = edit_dataset(
            ds, e.op, e.ratio, e.where, e.k, None, e.prior_epochs, e.prior_dim, e.prior_lr, e.seed, cfg.threads, e.cache
        )
    return ds


def make_config(
    model: str | None = None,
    data: str | None = None,
    seed: int | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    config: str | Path | dict[str, Any] | None = None,
    dataset_name: str | None = None,
) -> RunConfig:
    """Resolve a RunConfig: defaults < YAML < per-dataset < explicit arguments < overrides."""
    file_cfg = load_yaml(config) if isinstance(config, str | Path) else dict(config or {})
    explicit: dict[str, Any] = {}
    if model is not None:
        explicit["model"] = model
    if data is not None:
        explicit["data.source"] = data
    if seed is not None:
        explicit["seed"] = seed
    ov = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    return resolve_config(apply_overrides(file_cfg, explicit), ov, dataset_name)


def _versions() -> dict[str, str]:
    import scipy

    from modalrec import __version__

    return {
        "modalrec": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


@dataclass
class Run:
    """A trained (or loaded) run: its directory, config, final metrics and model."""

    dir: Path | None
    config: RunConfig
    metrics: dict[str, Any]
    model: Recommender
    dataset: Dataset
    history: list[dict[str, Any]] = field(default_factory=list)

    def recommend(self, users: list[int] | np.ndarray, k: int = 10, exclude_train: bool = True) -> np.ndarray:
        """Top-``k`` item ids for each user (training positives excluded), shape [len(users), k]."""
        users = np.asarray(users, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= self.dataset.n_users):
            bad = users[(users < 0) | (users >= self.dataset.n_users)][0]
            raise ModalrecError(f"user id {bad} is out of range: this dataset has users 0..{self.dataset.n_users - 1}")
        k = min(k, self.dataset.n_items)
        self.model.eval()
        with torch.no_grad():
            reps = self.model.ranking_representations()
            scores = reps.all_users("fused")[torch.from_numpy(users)] @ reps.all_items("fused").T
            if exclude_train:
                r, c = _rows(self.dataset.mask.tocsr(), users)
                scores[torch.from_numpy(r), torch.from_numpy(c)] = float("-inf")
            return torch.topk(scores, k, dim=1).indices.cpu().numpy()

    def evaluate(self, splits: tuple[str, ...] = ("valid", "test"), progress: bool = False) -> dict[str, Any]:
        """Full ranking of the best checkpoint (one forward) on the given splits."""
        self.model.eval()
        with torch.no_grad():
            reps = self.model.ranking_representations()
        return rank_reps(reps, self.dataset, self.config, splits, progress=progress).metrics


def _default_out(cfg: RunConfig, ds: Dataset) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.model}-{ds.name}-s{cfg.seed}-{stamp}"


def train(
    model: str,
    data: Dataset | str | None = None,
    seed: int = 0,
    overrides: dict[str, Any] | list[str] | None = None,
    config: str | Path | dict[str, Any] | None = None,
    out: str | Path | None = None,
    progress: bool = False,
    resume: bool = False,
    on_epoch_end: Any = None,
) -> Run:
    """Train ``model`` on ``data`` (a Dataset, a preset or a folder) and return the Run."""
    ds_obj = data if isinstance(data, Dataset) else None
    source = ds_obj.provenance.get("source") if ds_obj is not None else data
    cfg = make_config(model, source, seed, overrides, config)
    ds = prepare_dataset(cfg, ds_obj)
    cfg = make_config(model, source, seed, overrides, config, dataset_name=ds.name)
    params = resolve_params(cfg.model, ds.name, cfg.params).model_dump()
    update: dict[str, Any] = {"params": params}
    default_objective = getattr(get_model_class(cfg.model), "default_objective", None)
    if "objective" not in cfg.model_fields_set and default_objective:
        update["objective"] = default_objective  # recorded in config.yaml (e.g. brmrs trains with brmrs)
    cfg = cfg.model_copy(update=update)
    run_dir = RunDir(out or _default_out(cfg, ds))
    if resume:
        if not (run_dir.ckpt / "last.pt").exists():
            raise ModalrecError(f"cannot resume: {run_dir.ckpt / 'last.pt'} does not exist")
        saved = RunConfig.model_validate(run_dir.read_config())
        if saved.model_dump() != cfg.model_dump():
            raise ModalrecError(f"cannot resume {run_dir.path}: its config.yaml differs from this run's config")
        if run_dir.metrics_file.exists():
            run_dir.metrics_file.unlink()
    elif run_dir.metrics_file.exists() or (run_dir.ckpt / "last.pt").exists():
        raise ModalrecError(f"{run_dir.path} already holds a run; choose another --out or pass --resume")
    run_dir.create()
    handler = run_dir.attach_log()
    try:
        run_dir.write_config(cfg.model_dump(mode="json"))
        write_json(
            run_dir.path / "run.json",
            {
                "dataset": ds.stats(),
                "fingerprint": ds.fingerprint(),
                "provenance": _jsonable(ds.provenance),
                "versions": _versions(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        trainer = Trainer(cfg, ds, run_dir, progress=progress, on_epoch_end=on_epoch_end)
        if resume:
            trainer.resume()
        metrics = trainer.fit()
        trainer.load_best()
        run = Run(run_dir.path, cfg, metrics, trainer.model, ds, run_dir.read_history())
        if cfg.eval.save_topk:
            _write_topk(run, cfg.eval.save_topk)
        run_dir.write_metrics(metrics)  # written last: its presence means the run completed
        return run
    finally:
        logging.getLogger("modalrec").removeHandler(handler)
        handler.close()


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, str | int | float | bool | list | dict | type(None))}


def _write_topk(run: Run, k: int) -> None:
    import pandas as pd

    from modalrec.io import atomic_path

    users = np.flatnonzero(np.diff(run.dataset.test.indptr))
    top = run.recommend(users, k)
    if not run.config.eval.mmrec_compat:  # same masking as the test ranking
        top = _recommend_excluding_valid(run, users, k)
    df = pd.DataFrame(
        {
            "userID": np.repeat(users, top.shape[1]),
            "rank": np.tile(np.arange(1, top.shape[1] + 1), len(users)),
            "itemID": top.ravel(),
        }
    )
    assert run.dir is not None
    with atomic_path(run.dir / "topk.tsv") as tmp:
        df.to_csv(tmp, sep="\t", index=False)


def _recommend_excluding_valid(run: Run, users: np.ndarray, k: int) -> np.ndarray:
    ds = run.dataset
    tmp = Run(run.dir, run.config, run.metrics, run.model, ds.replace(mask_edges=(ds.mask + ds.valid).tocsr()))
    return tmp.recommend(users, k)


def load_run(path: str | Path) -> Run:
    """Rebuild a run from its directory (config + best checkpoint)."""
    rd = RunDir(path)
    cfg = RunConfig.model_validate(rd.read_config())
    ds = prepare_dataset(cfg)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, ds, cfg.params, device)
    state = rd.load("best.pt")
    model.load_state_dict(state["model"])
    metrics = {}
    if rd.metrics_file.exists():
        import json

        metrics = json.loads(rd.metrics_file.read_text())
    return Run(rd.path, cfg, metrics, model, ds, rd.read_history())


def evaluate(path: str | Path, progress: bool = False) -> dict[str, Any]:
    """Re-evaluate a run directory's best checkpoint on validation and test."""
    run = load_run(path)
    return run.evaluate(progress=progress)
