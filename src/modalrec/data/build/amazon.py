"""McAuley's Amazon review data (2014 and 2018 releases) as build inputs.

- reviews: JSON lines with ``reviewerID, asin, overall, unixReviewTime`` (both releases), or the
  headerless ``ratings_<Cat>.csv`` (user, item, rating, timestamp).
- metadata: one record per line; 2014 files are Python literals (parsed with ``ast.literal_eval``,
  never ``eval``), 2018 files are JSON. Text follows the MMRec notebook: title + brand + the tokens
  of the first category path + description.
- ``image_features_<Cat>.b``: records of a 10-byte ASIN followed by 4096 little-endian float32
  (VBPR's deep-CNN features), read through a memory map.
"""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

from modalrec.data.build.tables import join_text
from modalrec.errors import DataError

IMAGE_DIM = 4096
RECORD = np.dtype([("asin", "S10"), ("f", "<f4", (IMAGE_DIM,))])


def _open(path: Path):
    if not path.exists():
        raise DataError(f"{path} does not exist")
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def read_reviews(path: Path) -> pd.DataFrame:
    """Reviews as ``user, item, rating, timestamp`` (raw ids as strings)."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        names = ["user", "item", "rating", "timestamp"]
        df = pd.read_csv(path, header=None, names=names, dtype={"user": str, "item": str})
        return df.astype({"user": "string", "item": "string", "rating": float, "timestamp": float})
    cols = {"reviewerID": "user", "asin": "item", "overall": "rating", "unixReviewTime": "timestamp"}
    parts = []
    try:
        for chunk in pd.read_json(path, lines=True, dtype=False, chunksize=200_000):
            missing = [c for c in cols if c not in chunk.columns]
            if missing:
                raise DataError(f"{path}: review records lack {', '.join(missing)}; is this a reviews file?")
            parts.append(chunk[list(cols)].rename(columns=cols))
    except ValueError as e:
        raise DataError(f"{path}: cannot parse review JSON lines ({str(e).splitlines()[0]})") from None
    if not parts:
        raise DataError(f"{path} holds no reviews")
    df = pd.concat(parts, ignore_index=True)
    return df.astype({"user": "string", "item": "string", "rating": float, "timestamp": float})


def _record(line: str) -> dict:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return ast.literal_eval(line)  # the 2014 metadata is written as Python dict literals


def _as_text(v) -> str:
    if isinstance(v, list):
        return " ".join(_as_text(x) for x in v)
    return "" if v is None else str(v)


def read_meta(path: Path, wanted: set[str] | None = None) -> pd.DataFrame:
    """Item metadata as ``id, text`` (title, brand, first category path, description)."""
    rows: dict[str, list[str]] = {"id": [], "title": [], "brand": [], "cats": [], "desc": []}
    with _open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                r = _record(line)
            except (ValueError, SyntaxError):
                raise DataError(f"{path} line {n}: neither JSON nor a Python literal") from None
            asin = str(r.get("asin", ""))
            if not asin or (wanted is not None and asin not in wanted):
                continue
            cats = r.get("categories") or r.get("category") or []
            first = cats[0] if cats and isinstance(cats[0], list) else cats  # 2014: list of paths; 2018: one path
            rows["id"].append(asin)
            rows["title"].append(_as_text(r.get("title")))
            rows["brand"].append(_as_text(r.get("brand")))
            rows["cats"].append(_as_text(first))
            rows["desc"].append(_as_text(r.get("description")))
    df = pd.DataFrame(rows)
    parts = [df[c].str.replace(r"\s+", " ", regex=True).str.strip() for c in ("title", "brand", "cats", "desc")]
    out = pd.DataFrame({"id": df["id"].astype("string"), "text": join_text(parts, " ") if len(df) else []})
    return out[~out["id"].duplicated()].reset_index(drop=True)


def read_image_features(path: Path, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``image_features_<Cat>.b`` for the ASINs in ``wanted``: (features [n, 4096], found mask)."""
    if not path.exists():
        raise DataError(f"{path} does not exist")
    size = path.stat().st_size
    if size % RECORD.itemsize:
        raise DataError(
            f"{path}: {size} bytes is not a whole number of {RECORD.itemsize}-byte records "
            f"(10-byte ASIN + {IMAGE_DIM} float32); truncated or not an image_features_<Cat>.b file"
        )
    mm = np.memmap(path, dtype=RECORD, mode="r")
    asins = pd.Index(np.char.decode(np.asarray(mm["asin"]), "ascii", errors="replace"))
    first = np.flatnonzero(~asins.duplicated(keep="first"))  # a repeated ASIN: its first record is used
    hit = asins[first].get_indexer(pd.Index(np.asarray(wanted, dtype=str)))
    pos = np.where(hit >= 0, first[hit], -1)
    found = pos >= 0
    out = np.zeros((len(wanted), IMAGE_DIM), dtype=np.float32)
    if found.any():
        out[found] = mm["f"][pos[found]]
    return out, found
