"""``modalrec data download NAME``: fetch public originals by streaming, verify checksums, rename atomically.

A download is streamed into a temporary file beside the target, hashed on the fly, and renamed
onto the target only when the checksum matches; on any failure nothing is left at the target.
Checksums are the publishers' own (GroupLens ships ``.md5`` files); files whose publisher gives
none are marked ``unverified`` and downloaded without a check (we never invent a checksum).
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from modalrec.errors import DataError, ModalrecError
from modalrec.io import atomic_path

log = logging.getLogger("modalrec.data.build")

CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One published file: where it is, what to call it, and its published checksum (if any)."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None

    @property
    def verified(self) -> bool:
        return bool(self.md5 or self.sha256)


GROUPLENS = "https://files.grouplens.org/datasets/movielens"
SNAP_2014 = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
UCSD_2018 = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2"

# Category names as the publishers spell them; short aliases are the MMRec dataset names.
AMAZON_CATEGORIES = {
    "baby": "Baby",
    "sports": "Sports_and_Outdoors",
    "clothing": "Clothing_Shoes_and_Jewelry",
    "electronics": "Electronics",
    "beauty": "Beauty",
    "toys": "Toys_and_Games",
}
AMAZON_2018_NAMES = {"beauty": "All_Beauty"}  # 2018 renamed a few categories (Baby is absent there)


def _registry() -> dict[str, tuple[str, list[RemoteFile]]]:
    reg: dict[str, tuple[str, list[RemoteFile]]] = {
        "movielens-100k": (
            "MovieLens 100K (GroupLens; research use, no redistribution)",
            [RemoteFile(f"{GROUPLENS}/ml-100k.zip", "ml-100k.zip", md5="0e33842e24a9c977be4e0107933c0723")],
        ),
        "movielens-1m": (
            "MovieLens 1M (GroupLens; research use, no redistribution)",
            [RemoteFile(f"{GROUPLENS}/ml-1m.zip", "ml-1m.zip", md5="c4d9eecfca2ab87c1945afe126590906")],
        ),
    }
    for alias, cat in AMAZON_CATEGORIES.items():
        reg[f"amazon2014-{alias}"] = (
            f"Amazon 2014 (McAuley) {cat}: 5-core reviews, metadata, 4096-d image features",
            [
                RemoteFile(f"{SNAP_2014}/reviews_{cat}_5.json.gz", f"reviews_{cat}_5.json.gz"),
                RemoteFile(f"{SNAP_2014}/meta_{cat}.json.gz", f"meta_{cat}.json.gz"),
                RemoteFile(f"{SNAP_2014}/image_features_{cat}.b", f"image_features_{cat}.b"),
            ],
        )
        if alias == "baby":
            continue
        cat18 = AMAZON_2018_NAMES.get(alias, cat)
        reg[f"amazon2018-{alias}"] = (
            f"Amazon 2018 (Ni, Li, McAuley) {cat18}: 5-core reviews and metadata",
            [
                RemoteFile(f"{UCSD_2018}/categoryFilesSmall/{cat18}_5.json.gz", f"{cat18}_5.json.gz"),
                RemoteFile(f"{UCSD_2018}/metaFiles2/meta_{cat18}.json.gz", f"meta_{cat18}.json.gz"),
            ],
        )
    return reg


REGISTRY = _registry()


def fetch(remote: RemoteFile, out: str | Path, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download one file into ``out``; verify its checksum; the target appears only when complete and correct."""
    target = Path(out) / remote.filename
    if target.exists() and remote.verified and _digest(target, remote) == _expected(remote):
        log.info("%s already present and verified", target)
        return target
    if target.exists() and not remote.verified:
        log.warning("%s already present (unverified: no published checksum); delete it to download again", target)
        return target
    try:
        resp = urllib.request.urlopen(remote.url, timeout=timeout)  # noqa: S310 - URLs come from the registry
    except (urllib.error.URLError, OSError) as e:
        raise ModalrecError(f"cannot download {remote.url}: {getattr(e, 'reason', e)}") from None
    h = hashlib.md5() if remote.md5 else hashlib.sha256()
    total = int(resp.headers.get("Content-Length") or 0) or None
    from tqdm.auto import tqdm

    with resp, atomic_path(target) as tmp, open(tmp, "wb") as fh:
        with tqdm(total=total, unit="B", unit_scale=True, desc=remote.filename, disable=not progress or None) as bar:
            while True:
                try:
                    block = resp.read(CHUNK)
                except OSError as e:
                    raise ModalrecError(f"download of {remote.url} broke off: {e}; nothing was written") from None
                if not block:
                    break
                fh.write(block)
                h.update(block)
                bar.update(len(block))
        fh.flush()
        if total is not None and fh.tell() != total:
            raise ModalrecError(f"{remote.url}: got {fh.tell()} of {total} bytes; nothing was written, try again")
        if remote.verified and h.hexdigest() != _expected(remote):
            kind = "md5" if remote.md5 else "sha256"
            raise DataError(
                f"{remote.url}: {kind} {h.hexdigest()} does not match the published {_expected(remote)}; "
                f"the download is corrupt or the file changed upstream; nothing was written to {target}"
            )
    if not remote.verified:
        log.warning("%s: no published checksum, so the file is unverified", remote.filename)
    return target


def _expected(remote: RemoteFile) -> str:
    return (remote.md5 or remote.sha256 or "").lower()


def _digest(path: Path, remote: RemoteFile) -> str:
    h = hashlib.md5() if remote.md5 else hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(name: str, out: str | Path, timeout: float = 60.0) -> list[Path]:
    """Download every file of a registered dataset into ``out``."""
    if name not in REGISTRY:
        raise ModalrecError(f"unknown dataset {name!r}; choose from: {', '.join(sorted(REGISTRY))}")
    Path(out).mkdir(parents=True, exist_ok=True)
    return [fetch(f, out, timeout) for f in REGISTRY[name][1]]


def describe() -> list[dict[str, str]]:
    """The registry as rows (name, description, files, checksum status) for ``--list``."""
    return [
        {
            "name": n,
            "description": d,
            "files": ", ".join(f.filename for f in files),
            "checksums": "verified (published md5)" if all(f.verified for f in files) else "unverified",
        }
        for n, (d, files) in sorted(REGISTRY.items())
    ]
