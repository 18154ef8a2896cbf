"""``build(spec, out)``: raw interactions + item text + images -> a dataset in the MMRec layout.

Steps: read -> drop rows with missing ids -> rating threshold -> dedupe -> iterative k-core ->
reindex -> split -> features (encode or attach precomputed; items without a modality get that
modality's mean and are listed) -> write ``<name>.inter``, ``*_feat.npy``, the id mappings,
``missed_<modality>_itemIDs.csv`` and ``build.json`` (provenance: spec, counts, encoders, timings).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalrec import __version__
from modalrec.data.build import amazon
from modalrec.data.build.encoders import encode_images, encode_text
from modalrec.data.build.filter import dedupe, kcore, rating_threshold
from modalrec.data.build.reindex import reindex, write_mappings
from modalrec.data.build.spec import BuildSpec, load_spec
from modalrec.data.build.split import global_time, leave_one_out, random_split
from modalrec.data.build.tables import read_interactions, read_items
from modalrec.data.dataset import Dataset
from modalrec.data.mmrec import write_mmrec
from modalrec.errors import DataError
from modalrec.io import atomic_path, load_npy, write_json

log = logging.getLogger("modalrec.data.build")


def _examples(ids: np.ndarray, k: int = 5) -> str:
    shown = ", ".join(map(str, ids[:k]))
    return shown + (", ..." if len(ids) > k else "")


def _interactions(spec: BuildSpec, root: Path) -> pd.DataFrame:
    if spec.amazon is not None:
        return amazon.read_reviews(spec.resolve(spec.amazon.reviews, root))
    assert spec.interactions is not None
    return read_interactions(spec.interactions, spec.resolve(spec.interactions.file, root))


def _filter(spec: BuildSpec, df: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    counts["raw_rows"] = len(df)
    need = ["user", "item"] + (["timestamp"] if spec.split.method != "random" else [])
    df = df.dropna(subset=need)
    df = df[(df["user"] != "") & (df["item"] != "")]
    counts["after_dropna"] = len(df)
    df = rating_threshold(df, spec.rating_threshold)
    counts["after_rating_threshold"] = len(df)
    if spec.dedupe:
        df = dedupe(df)
    counts["after_dedupe"] = len(df)
    df, passes = kcore(df, spec.kcore.user, spec.kcore.item)
    counts["after_kcore"] = len(df)
    counts["kcore_passes"] = passes
    if len(df) == 0:
        raise DataError(
            f"no interactions left after filtering ({counts}); lower kcore.user/kcore.item or rating_threshold"
        )
    return df


def _split(spec: BuildSpec, df: pd.DataFrame, n_users: int, counts: dict[str, int]) -> pd.DataFrame:
    u = df["userID"].to_numpy()
    m = spec.split.method
    if m == "random":
        lab = random_split(u, n_users, spec.split.seed, spec.split.ratios)
    elif m == "loo":
        lab = leave_one_out(u, df["itemID"].to_numpy(), df["timestamp"].to_numpy(), n_users)
    else:
        lab = global_time(df["timestamp"].to_numpy(), spec.split.ratios)
    df = df.assign(x_label=lab)
    has_train = np.zeros(n_users, dtype=bool)
    has_train[u[lab == 0]] = True
    cold = (lab > 0) & ~has_train[u]
    if cold.any():  # only the global-time split can produce these
        counts["cold_user_rows_dropped"] = int(cold.sum())
        log.warning("split %s: dropped %d valid/test rows of users with no training rows", m, int(cold.sum()))
        df = df[~cold]
    return df


def _fill_missing(arr: np.ndarray, ok: np.ndarray, modality: str) -> np.ndarray:
    """Rows not ``ok`` get the mean of the ``ok`` rows (MMRec's rule for items without an image)."""
    if not ok.any():
        raise DataError(f"no item has a usable {modality}; check the spec's {modality} inputs")
    out = arr.astype(np.float32, copy=True)
    out[~ok] = out[ok].mean(axis=0)
    return out


def _items_table(spec: BuildSpec, root: Path, item_ids: np.ndarray) -> pd.DataFrame | None:
    if spec.amazon is not None and spec.amazon.meta:
        return amazon.read_meta(spec.resolve(spec.amazon.meta, root), set(map(str, item_ids)))
    if spec.items is not None:
        return read_items(spec.items, spec.resolve(spec.items.file, root))
    return None


def _precomputed(
    spec: BuildSpec, root: Path, modality: str, table: pd.DataFrame | None, item_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    pre = spec.precomputed[modality]
    path = spec.resolve(pre.file, root)
    if not path.exists():
        raise DataError(f"{path} does not exist (precomputed.{modality}.file)")
    try:
        arr = load_npy(path)
    except ValueError as e:
        raise DataError(f"{path}: not a plain numeric .npy ({e}); pickled arrays are refused") from None
    if pre.ids:
        ids = [x.strip() for x in spec.resolve(pre.ids, root).read_text(encoding="utf-8").splitlines() if x.strip()]
    elif table is not None:
        ids = table["id"].astype(str).tolist()
    else:
        raise DataError(f"precomputed.{modality}: give ids (a file of raw item ids, one per row of {path.name})")
    if arr.ndim != 2 or arr.shape[0] != len(ids):
        raise DataError(f"{path}: shape {arr.shape} does not match {len(ids)} ids (precomputed.{modality})")
    pos = pd.Index(ids).get_indexer(pd.Index(item_ids.astype(str)))
    out = np.zeros((len(item_ids), arr.shape[1]), dtype=np.float32)
    ok = pos >= 0
    out[ok] = arr[pos[ok]]
    return out, ok & np.isfinite(out).all(axis=1)


def _text(spec: BuildSpec, table: pd.DataFrame | None, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    assert table is not None and spec.encoders.text is not None
    text = table.set_index("id")["text"].reindex(pd.Index(item_ids.astype(str)))
    absent = text.isna().to_numpy()
    empty = (text.fillna("") == "").to_numpy() & ~absent
    if absent.any():
        log.warning(
            "%d of %d items have no row in the item table (e.g. %s); they get the mean text feature and are "
            "listed in missed_text_itemIDs.csv",
            int(absent.sum()),
            len(item_ids),
            _examples(item_ids[absent]),
        )
    if empty.any():
        log.warning("%d items have empty text; they get the mean text feature", int(empty.sum()))
    ok = ~(absent | empty)
    t0 = time.time()
    enc, info = encode_text(text[ok].tolist(), spec.encoders.text)
    info["seconds"] = round(time.time() - t0, 2)
    arr = np.zeros((len(item_ids), enc.shape[1]), dtype=np.float32)
    arr[ok] = enc
    info.update(no_table_row=int(absent.sum()), empty_text=int(empty.sum()))
    return arr, ok, info


def _image_paths(spec: BuildSpec, root: Path, table: pd.DataFrame | None, item_ids: np.ndarray) -> list[Path | None]:
    folder = spec.resolve(spec.images.folder if spec.images else ".", root)
    if spec.items is not None and spec.items.image is not None and table is not None and "image" in table:
        col = table.set_index("id")["image"].reindex(pd.Index(item_ids.astype(str)))
        return [None if pd.isna(p) or p == "" else spec.resolve(str(p), folder) for p in col]
    pattern = spec.images.pattern if spec.images else "{id}.jpg"
    return [folder / pattern.format(id=i) for i in item_ids]


def _image(
    spec: BuildSpec, root: Path, table: pd.DataFrame | None, item_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict]:
    assert spec.encoders.image is not None
    paths = _image_paths(spec, root, table, item_ids)
    exists = np.array([p is not None and p.is_file() for p in paths], dtype=bool)
    if not exists.any():
        raise DataError(f"no image file found for any of {len(paths)} items (first looked for: {paths[0]})")
    if not exists.all():
        log.warning(
            "%d of %d items have no image file (e.g. itemID %s); they get the mean image feature and are "
            "listed in missed_image_itemIDs.csv",
            int((~exists).sum()),
            len(paths),
            _examples(np.flatnonzero(~exists)),
        )
    t0 = time.time()
    enc, ok_enc, info = encode_images([p for p, e in zip(paths, exists) if e], spec.encoders.image)
    info["seconds"] = round(time.time() - t0, 2)
    unreadable = np.zeros(len(paths), dtype=bool)
    unreadable[np.flatnonzero(exists)[~ok_enc]] = True
    if unreadable.any():
        first = paths[int(np.flatnonzero(unreadable)[0])]
        log.warning(
            "%d of %d image files could not be read (first: %s); those items get the mean image feature",
            int(unreadable.sum()),
            int(exists.sum()),
            first,
        )
    arr = np.zeros((len(paths), enc.shape[1]), dtype=np.float32)
    arr[exists] = np.nan_to_num(enc)
    info.update(no_file=int((~exists).sum()), unreadable=int(unreadable.sum()))
    return arr, exists & ~unreadable, info


def _features(spec: BuildSpec, root: Path, item_ids: np.ndarray) -> tuple[dict[str, np.ndarray], dict, dict]:
    """Per modality: (features with missing rows mean-filled, info, missing itemIDs)."""
    table = _items_table(spec, root, item_ids)
    feats, info, missed = {}, {}, {}
    jobs: dict[str, Any] = {}
    for m in spec.precomputed:
        jobs[m] = "precomputed"
    has_text = table is not None and (spec.items is None or bool(spec.items.text))
    if "text" not in jobs and spec.encoders.text is not None and has_text:
        jobs["text"] = "encode"
    if "image" not in jobs:
        if spec.amazon is not None and spec.amazon.image_features:
            jobs["image"] = "amazon"
        elif spec.encoders.image is not None and (spec.images is not None or (spec.items and spec.items.image)):
            jobs["image"] = "encode"
    for m, how in jobs.items():
        if how == "precomputed":
            arr, ok = _precomputed(spec, root, m, table, item_ids)
            inf: dict = {"precomputed": spec.precomputed[m].file}
        elif how == "amazon":
            arr, ok = amazon.read_image_features(spec.resolve(spec.amazon.image_features, root), item_ids)
            inf = {"precomputed": spec.amazon.image_features}
        elif m == "text":
            arr, ok, inf = _text(spec, table, item_ids)
        else:
            arr, ok, inf = _image(spec, root, table, item_ids)
        if not ok.all() and how != "encode":
            log.warning(
                "%d of %d items have no %s feature; they get the mean and are listed in missed_%s_itemIDs.csv",
                int((~ok).sum()),
                len(ok),
                m,
                m,
            )
        feats[m] = _fill_missing(arr, ok, m)
        inf.update(dim=int(arr.shape[1]), missing=int((~ok).sum()))
        info[m] = inf
        missed[m] = np.flatnonzero(~ok)
    return feats, info, missed


def build(spec: BuildSpec | str | Path, out: str | Path, source: str | Path | None = None) -> Dataset:
    """Build a dataset from a spec (object or YAML path) into ``out``; ``source`` overrides ``spec.source``."""
    if not isinstance(spec, BuildSpec):
        spec = load_spec(spec)
    root = Path(source if source is not None else spec.source).expanduser().resolve()
    if not root.exists():
        raise DataError(f"source folder {root} does not exist; pass --source PATH (the raw-data folder)")
    out = Path(out)
    t_start = time.time()
    counts: dict[str, int] = {}
    df = _filter(spec, _interactions(spec, root), counts)
    df, user_ids, item_ids = reindex(df, spec.reindex)
    n_users, n_items = len(user_ids), len(item_ids)
    df = _split(spec, df, n_users, counts)
    feats, feat_info, missed = _features(spec, root, item_ids)
    splits = {
        s: (df.userID.to_numpy()[df.x_label.to_numpy() == k], df.itemID.to_numpy()[df.x_label.to_numpy() == k])
        for k, s in enumerate(("train", "valid", "test"))
    }
    prov = {"source": str(root), "build": spec.name, "split": spec.split.model_dump()}
    ds = Dataset.from_pairs(spec.name, n_users, n_items, splits, feats, provenance=prov)
    write_mmrec(ds, out)
    write_mappings(out, user_ids, item_ids)
    for m, idx in missed.items():
        with atomic_path(out / f"missed_{m}_itemIDs.csv") as tmp:
            pd.DataFrame({"itemID": idx, "item_id": item_ids[idx]}).to_csv(tmp, sep="\t", index=False)
    report = {
        "modalrec_version": __version__,
        "spec": spec.model_dump(mode="json"),
        "source": str(root),
        "counts": counts,
        "stats": ds.stats(),
        "features": feat_info,
        "fingerprint": ds.fingerprint(),
        "seconds": round(time.time() - t_start, 2),
    }
    write_json(out / "build.json", report)
    log.info("built %r into %s in %.1fs", ds, out, report["seconds"])
    return ds.replace(provenance={**ds.provenance, "build_report": report})
