"""Read and write the MMRec layout: ``<name>.inter`` (TSV) plus one ``.npy`` per modality.

Reading validates everything a user can get wrong and says where and how to fix it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from modalrec.data.dataset import Dataset
from modalrec.data.features import warn_feature_scale
from modalrec.errors import DataError
from modalrec.io import atomic_path, load_npy, save_npy, write_text

log = logging.getLogger("modalrec.data")

REQUIRED = ("userID", "itemID", "x_label")
DEFAULT_FEATURES = {"image": "image_feat.npy", "text": "text_feat.npy"}
MANIFEST = "modalrec.yaml"
SPLITS = ("train", "valid", "test")


def _find_inter(path: Path, inter: str | None) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path} does not exist; give a folder in the MMRec layout or synthetic:PRESET")
    if inter:
        p = path / inter
        if not p.exists():
            raise DataError(f"{p} does not exist (data.inter={inter!r})")
        return p
    manifest = _manifest(path)
    if manifest.get("inter"):
        return path / manifest["inter"]
    found = sorted(path.glob("*.inter"))
    if not found:
        raise DataError(f"no .inter file in {path}; the MMRec layout needs <name>.inter (TSV: userID itemID x_label)")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(f"{path} holds several .inter files ({names}); choose one with data.inter=NAME")
    return found[0]


def _manifest(folder: Path) -> dict[str, Any]:
    p = folder / MANIFEST
    if not p.exists():
        return {}
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise DataError(f"{p}: expected a mapping with keys inter, features")
    return data


def _int_column(df: pd.DataFrame, col: str, file: Path) -> np.ndarray:
    s = df[col]
    if not pd.api.types.is_integer_dtype(s):
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() | (num != np.floor(num.fillna(0)))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{file} line {row + 2}: column {col} has non-integer value {s.iloc[row]!r}; "
                f"ids and labels must be integers"
            )
        s = num
    arr = s.to_numpy().astype(np.int64)
    if len(arr) and arr.min() < 0:
        row = int(np.argmin(arr))
        raise DataError(f"{file} line {row + 2}: {col} {arr[row]} is negative; ids must be 0-based non-negative")
    return arr


def read_inter(file: Path) -> pd.DataFrame:
    """Read and validate an ``.inter`` file into columns userID, itemID, x_label (int64)."""
    try:
        df = pd.read_csv(file, sep="\t", engine="c")
    except pd.errors.EmptyDataError:
        raise DataError(f"{file} is empty; expected a TSV header userID itemID x_label and rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{file}: cannot parse as tab-separated values ({str(e).splitlines()[0]})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        found = ", ".join(map(str, df.columns)) or "none"
        raise DataError(
            f"{file}: missing column(s) {', '.join(missing)} (found: {found}); "
            f"the MMRec layout needs a tab-separated header with userID, itemID and x_label"
        )
    out = pd.DataFrame({c: _int_column(df, c, file) for c in REQUIRED})
    bad = ~out["x_label"].isin([0, 1, 2])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{file} line {row + 2}: x_label {out['x_label'].iloc[row]} is not 0, 1 or 2 (train/valid/test)"
        )
    return out


def _clean(df: pd.DataFrame, file: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Deduplicate pairs and drop valid/test rows of users without training rows."""
    report: dict[str, int] = {}
    df = df.sort_values("x_label", kind="stable")
    dup = df.duplicated(["userID", "itemID"], keep="first")
    if dup.any():
        report["duplicates_dropped"] = int(dup.sum())
        log.warning(
            "%s: %d duplicate (user, item) rows; kept one per pair (the earliest split, so a pair is never "
            "both a training positive and a held-out one)",
            file,
            int(dup.sum()),
        )
        df = df[~dup]
    train_users = np.unique(df.loc[df.x_label == 0, "userID"].to_numpy())
    cold = (df.x_label > 0) & ~df["userID"].isin(train_users)
    if cold.any():
        report["cold_rows_dropped"] = int(cold.sum())
        log.warning(
            "%s: dropped %d valid/test rows of %d users with no training rows (they cannot be ranked)",
            file,
            int(cold.sum()),
            df.loc[cold, "userID"].nunique(),
        )
        df = df[~cold]
    return df, report


def _load_features(folder: Path, mapping: dict[str, str], n_items: int) -> dict[str, np.ndarray]:
    feats: dict[str, np.ndarray] = {}
    for modality, fname in mapping.items():
        p = folder / fname
        if not p.exists():
            have = ", ".join(sorted(x.name for x in folder.glob("*.npy"))) or "none"
            raise DataError(
                f"{p} does not exist (modality {modality!r}); .npy files here: {have}. "
                f"Map modalities with data.features, e.g. --features {modality}=FILE.npy"
            )
        try:
            arr = load_npy(p)
        except ValueError as e:
            raise DataError(f"{p}: not a plain numeric .npy array ({e}); pickled arrays are refused") from None
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
            raise DataError(f"{p}: expected a 2-d numeric array [n_items, dim], got shape {arr.shape} {arr.dtype}")
        if arr.shape[0] != n_items:
            raise DataError(
                f"{p} has {arr.shape[0]} rows but the dataset has {n_items} items (max itemID + 1); "
                f"row i must hold item i's features (set data.n_items if trailing items have no interactions)"
            )
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        finite = np.isfinite(arr).all(axis=1)
        if not finite.all():
            rows = np.flatnonzero(~finite)
            raise DataError(
                f"{p}: {len(rows)} rows contain NaN or inf (first: row {rows[0]}); impute or fix them "
                f"(e.g. replace with the modality mean) before training"
            )
        feats[modality] = arr
    return feats


def _feature_mapping(folder: Path, features: dict[str, str] | None) -> dict[str, str]:
    if features is not None:
        return dict(features)
    manifest = _manifest(folder)
    if manifest.get("features"):
        return dict(manifest["features"])
    return {m: f for m, f in DEFAULT_FEATURES.items() if (folder / f).exists()}


def read_mmrec(
    path: str | Path,
    features: dict[str, str] | None = None,
    inter: str | None = None,
    n_items: int | None = None,
) -> Dataset:
    """Load a folder (or a single ``.inter`` file) in the MMRec layout as a validated Dataset."""
    path = Path(path)
    file = _find_inter(path, inter)
    folder = file.parent
    df = read_inter(file)
    if len(df) == 0:
        raise DataError(f"{file} has a header but no rows")
    df, report = _clean(df, file)
    parts = {s: df[df.x_label == k] for k, s in enumerate(SPLITS)}
    for s in SPLITS:
        if len(parts[s]) == 0:
            what = "training" if s == "train" else ("validation" if s == "valid" else "test")
            raise DataError(
                f"{file}: the {what} split is empty (no rows with x_label={SPLITS.index(s)}); "
                f"every split needs rows (train 0, valid 1, test 2)"
            )
    n_users = int(df.userID.max()) + 1
    max_items = int(df.itemID.max()) + 1
    if n_items is not None and n_items < max_items:
        raise DataError(f"data.n_items={n_items} but {file} has itemID {max_items - 1}; n_items must exceed every id")
    n_items = n_items or max_items
    feats = _load_features(folder, _feature_mapping(folder, features), n_items)
    warn_feature_scale(feats, str(folder))
    splits = {s: (p.userID.to_numpy(), p.itemID.to_numpy()) for s, p in parts.items()}
    name = file.stem
    ds = Dataset.from_pairs(name, n_users, n_items, splits, feats, provenance={"source": str(path), **report})
    reasons = folder / "reasons.tsv"
    if reasons.exists():
        ds = _attach_reasons(ds, reasons)
    return ds


def _attach_reasons(ds: Dataset, file: Path) -> Dataset:
    r = pd.read_csv(file, sep="\t")
    if not {"userID", "itemID", "reason"} <= set(r.columns):
        raise DataError(f"{file}: expected columns userID, itemID, reason")
    from modalrec.data.synthetic import REASONS

    found = set(r.reason.unique().tolist())
    names = list(REASONS) if found <= set(REASONS) else sorted(found)
    code = r.reason.map({n: i for i, n in enumerate(names)}).to_numpy()
    extras = {
        "reason_user": r.userID.to_numpy(np.int64),
        "reason_item": r.itemID.to_numpy(np.int64),
        "reason_code": code.astype(np.int64),
    }
    return ds.replace(extras={**ds.extras, **extras}, provenance={**ds.provenance, "reason_names": names})


def feature_filename(modality: str) -> str:
    """The file name a modality is written to (``image_feat.npy`` style)."""
    return DEFAULT_FEATURES.get(modality, f"{modality}_feat.npy")


def write_mmrec(ds: Dataset, out: str | Path, name: str | None = None) -> Path:
    """Write a Dataset in the MMRec layout (plus a small manifest); returns the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = name or ds.name
    frames = []
    for k, s in enumerate(SPLITS):
        coo = ds.split(s).tocoo()
        frames.append(pd.DataFrame({"userID": coo.row, "itemID": coo.col, "x_label": k}))
    df = pd.concat(frames, ignore_index=True)
    with atomic_path(out / f"{name}.inter") as tmp:
        df.to_csv(tmp, sep="\t", index=False)
    mapping = {}
    for m, f in ds.features.items():
        mapping[m] = feature_filename(m)
        save_npy(out / mapping[m], f)
    if "reason_code" in ds.extras:
        names = ds.provenance.get("reason_names", [])
        r = pd.DataFrame(
            {
                "userID": ds.extras["reason_user"],
                "itemID": ds.extras["reason_item"],
                "reason": [names[c] for c in ds.extras["reason_code"]],
            }
        )
        with atomic_path(out / "reasons.tsv") as tmp:
            r.to_csv(tmp, sep="\t", index=False)
    write_text(out / MANIFEST, yaml.safe_dump({"inter": f"{name}.inter", "features": mapping}, sort_keys=False))
    return out
