"""Read the raw interactions and item tables named in a build spec into canonical frames.

Interactions become columns ``user, item`` (raw ids as strings) plus ``rating`` / ``timestamp``
(floats) when mapped; items become ``id, text`` (and ``image`` when a path column is mapped).
Raw ids are compared as strings everywhere, so ``42`` in u.data matches ``42`` in items.csv.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from modalrec.data.build.spec import Column, InteractionsSpec, ItemsSpec, TableSpec
from modalrec.errors import DataError

log = logging.getLogger("modalrec.data.build")

SEPARATORS = {"csv": ",", "tsv": "\t"}


def read_table(spec: TableSpec, path: Path, text_cols: list[Column] | None = None) -> pd.DataFrame:
    """Read a CSV/TSV/JSON-lines file (optionally .gz); ``text_cols`` (default: all) are read as text."""
    if not path.exists():
        raise DataError(f"{path} does not exist (from {type(spec).__name__.removesuffix('Spec').lower()}.file)")
    fmt = spec.resolved_format()
    try:
        if fmt == "jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
            return df.astype({c: "string" for c in df.columns if df[c].dtype == object})
        sep = spec.sep if spec.sep is not None else SEPARATORS[fmt]
        return pd.read_csv(
            path,
            sep=sep,
            header=0 if spec.header else None,
            dtype=str if text_cols is None else {c: str for c in text_cols},
            keep_default_na=False,
            na_values=[""],
            encoding=spec.encoding,
            engine="c" if len(sep) == 1 else "python",
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: cannot parse as {fmt} ({str(e).splitlines()[0]}); check format/sep/header") from None


def _column(df: pd.DataFrame, col: Column, key: str, path: Path) -> pd.Series:
    """One column by name or position, with an error that lists what the file does have."""
    if col in df.columns:
        return df[col]
    if isinstance(col, str) and col.isdigit() and int(col) in df.columns:
        return df[int(col)]
    found = ", ".join(map(str, df.columns[:30])) or "none"
    hint = "a 0-based position (the file has no header)" if not isinstance(df.columns[0], str) else "a header name"
    raise DataError(f"{path}: no column {col!r} for {key} (found: {found}); set {key} to {hint}")


def _numeric(s: pd.Series, key: str, path: Path) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=np.float64)
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna() & s.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path} row {row + 1}: {key} value {s.iloc[row]!r} is not a number")
    return num.to_numpy(dtype=np.float64)


def _ids(s: pd.Series) -> pd.Series:
    """Raw ids as strings (missing ids stay missing); ids are compared as text everywhere."""
    if s.dtype == object and s.map(type).eq(str).all():
        return s
    return s.where(s.isna(), s.astype(str))


def read_interactions(spec: InteractionsSpec, path: Path) -> pd.DataFrame:
    """The interactions table as ``user, item[, rating, timestamp]``; rows with a missing id are dropped."""
    df = read_table(spec, path, [spec.user, spec.item])
    out = pd.DataFrame(
        {
            "user": _ids(_column(df, spec.user, "interactions.user", path)),
            "item": _ids(_column(df, spec.item, "interactions.item", path)),
        }
    )
    if spec.rating is not None:
        out["rating"] = _numeric(_column(df, spec.rating, "interactions.rating", path), "rating", path)
    if spec.timestamp is not None:
        out["timestamp"] = _numeric(_column(df, spec.timestamp, "interactions.timestamp", path), "timestamp", path)
    return out


def join_text(parts: list[pd.Series], sep: str) -> pd.Series:
    """Concatenate text columns row-wise, skipping empty parts (vectorised per column)."""
    if not parts:
        raise DataError("no text fields to join")
    out = parts[0]
    for p in parts[1:]:
        glue = np.where((out != "") & (p != ""), sep, "")
        out = out + glue + p
    return out


def _clean_text(s: pd.Series) -> pd.Series:
    """NaN -> "", newlines and runs of whitespace -> one space (as the MMRec notebook did)."""
    return s.fillna("").astype(str).str.replace(r"\s+", " ", regex=True).str.strip()


def read_items(spec: ItemsSpec, path: Path) -> pd.DataFrame:
    """The item table as ``id, text[, image]``, one row per id (duplicates: first kept, conflicts warned)."""
    df = read_table(spec, path)
    ids = _ids(_column(df, spec.id, "items.id", path))
    fields: list[pd.Series] = []
    for f in spec.text:
        if isinstance(f, str) and f in spec.flags:
            cols = [_column(df, c, f"items.flags.{f}", path) for c in spec.flags[f]]
            named = [
                pd.Series(np.where(pd.to_numeric(c, errors="coerce").fillna(0).to_numpy() > 0, n, ""))
                for c, n in zip(cols, spec.flags[f])
            ]
            fields.append(join_text(named, spec.flags_sep) if named else pd.Series([""] * len(df)))
        else:
            fields.append(_clean_text(_column(df, f, "items.text", path)).reset_index(drop=True))
    unknown = set(spec.flags) - {f for f in spec.text if isinstance(f, str)}
    if unknown:
        log.warning("items.flags %s are not listed in items.text, so they are not used", sorted(unknown))
    out = pd.DataFrame({"id": ids.reset_index(drop=True)})
    out["text"] = join_text(fields, spec.text_sep) if fields else ""
    if spec.image is not None:
        out["image"] = _column(df, spec.image, "items.image", path).reset_index(drop=True)
    out = out[out["id"].notna() & (out["id"] != "")]
    dup = out["id"].duplicated(keep="first")
    if dup.any():
        conflicting = out.groupby("id", sort=False)["text"].nunique()
        n_conf = int((conflicting > 1).sum())
        msg = "%s: %d duplicated item ids (rows dropped, first kept)"
        if n_conf:
            log.warning(
                msg + "; %d of them carry different text (the first row's text is used)", path, int(dup.sum()), n_conf
            )
        else:
            log.info(msg + "; duplicates carry identical text", path, int(dup.sum()))
        out = out[~dup]
    return out.reset_index(drop=True)
