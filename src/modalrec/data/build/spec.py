"""The build spec: a YAML file saying how raw interactions, item text and images become a dataset.

Every model forbids unknown keys, so a typo fails loudly with the key's name instead of being ignored.
Relative paths resolve against ``source`` (the raw-data root), which itself resolves against the
current directory; ``modalrec data build --source PATH`` overrides it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modalrec.errors import ConfigError

Column = str | int  # a header name, or a 0-based position for headerless files


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableSpec(_Strict):
    """A delimited or JSON-lines table on disk."""

    file: str
    format: Literal["csv", "tsv", "jsonl", "auto"] = "auto"
    sep: str | None = None  # overrides the format's separator (csv ",", tsv "\t"); a regex like "::" works too
    header: bool = True  # False: columns are addressed by 0-based position
    encoding: str = "utf-8"

    def resolved_format(self) -> str:
        """The format, guessed from the file suffix when ``auto``."""
        if self.format != "auto":
            return self.format
        name = self.file.lower().removesuffix(".gz")
        if name.endswith((".jsonl", ".json")):
            return "jsonl"
        if name.endswith((".tsv", ".data", ".inter")):
            return "tsv"
        return "csv"


class InteractionsSpec(TableSpec):
    """The user-item interactions table and which columns hold what."""

    user: Column = "user"
    item: Column = "item"
    rating: Column | None = None
    timestamp: Column | None = None


class ItemsSpec(TableSpec):
    """The item table: an id column and the text fields concatenated, in order, into one sentence."""

    id: Column = "item"
    text: list[Column] = Field(default_factory=list)
    text_sep: str = " "
    # derived text fields: name -> 0/1 columns; the field's text is the names of the columns set to 1
    flags: dict[str, list[str]] = Field(default_factory=dict)
    flags_sep: str = ", "
    image: Column | None = None  # a column of image paths (relative to images.folder or source)


class ImagesSpec(_Strict):
    """Item images: files named by raw item id inside a folder (or paths from the item table)."""

    folder: str = "."
    pattern: str = "{id}.jpg"  # ``{id}`` is the raw item id


class PrecomputedSpec(_Strict):
    """An ``.npy`` of precomputed features: row j belongs to the j-th raw id of ``ids``."""

    file: str
    ids: str | None = None  # a text file, one raw id per line; default: the item table's ids in file order


class AmazonSpec(_Strict):
    """McAuley's Amazon review data (2014 or 2018): reviews JSON(.gz), metadata, binary image features."""

    version: Literal[2014, 2018] = 2014
    reviews: str  # reviews_<Cat>_5.json.gz (2014) or <Cat>_5.json.gz (2018); ratings_<Cat>.csv also works
    meta: str | None = None  # meta_<Cat>.json.gz
    image_features: str | None = None  # image_features_<Cat>.b: 10-byte ASIN + 4096 float32 per record


class KCoreSpec(_Strict):
    """Iterative k-core: drop users/items below the minimum until nothing changes (0 disables)."""

    user: int = Field(5, ge=0)
    item: int = Field(5, ge=0)


class SplitSpec(_Strict):
    """How interactions become train/valid/test."""

    method: Literal["random", "loo", "global_time"] = "random"
    seed: int = 2024
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)

    @field_validator("ratios")
    @classmethod
    def _sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) < 0 or abs(sum(v) - 1.0) > 1e-6 or v[0] <= 0:
            raise ValueError(f"ratios {list(v)} must be non-negative, sum to 1, and give train a share")
        return v


class TextEncoderSpec(_Strict):
    """A text encoder: a sentence-transformers model name, or ``hashing`` (tiny, deterministic, offline)."""

    model: str = "all-MiniLM-L6-v2"
    batch_size: int = Field(64, ge=1)
    dim: int = Field(64, ge=1)  # output size of the ``hashing`` encoder only
    max_chars: int | None = None  # truncate long texts (the model truncates tokens anyway)


class ImageEncoderSpec(_Strict):
    """An image encoder: ``efficientnet-lite0`` (offline weights), a timm/torchvision name, or ``pixels``."""

    model: str = "efficientnet-lite0"
    batch_size: int = Field(32, ge=1)
    size: int = Field(224, ge=8)  # input resolution: shorter side resized to this, then centre-cropped
    grid: int = Field(4, ge=1)  # ``pixels`` encoder only: mean colour on a grid x grid layout


class EncodersSpec(_Strict):
    text: TextEncoderSpec | None = Field(default_factory=TextEncoderSpec)
    image: ImageEncoderSpec | None = Field(default_factory=ImageEncoderSpec)


class BuildSpec(_Strict):
    """A whole build: inputs, filtering, reindexing, split and features."""

    name: str
    source: str = "."
    interactions: InteractionsSpec | None = None
    items: ItemsSpec | None = None
    images: ImagesSpec | None = None
    amazon: AmazonSpec | None = None
    precomputed: dict[str, PrecomputedSpec] = Field(default_factory=dict)
    rating_threshold: float | None = None  # keep ratings >= this (None: keep all, as MMRec did)
    dedupe: bool = True  # one row per (user, item): the earliest (by timestamp when there is one)
    kcore: KCoreSpec = Field(default_factory=KCoreSpec)
    reindex: Literal["sorted", "first_seen"] = "sorted"
    split: SplitSpec = Field(default_factory=SplitSpec)
    encoders: EncodersSpec = Field(default_factory=EncodersSpec)

    @model_validator(mode="after")
    def _one_source(self) -> BuildSpec:
        if (self.interactions is None) == (self.amazon is None):
            raise ValueError("give exactly one of `interactions` (a table) or `amazon` (the review-data preset)")
        if self.split.method != "random" and self.interactions is not None and self.interactions.timestamp is None:
            raise ValueError(f"split.method={self.split.method} needs interactions.timestamp (a time column)")
        return self

    def resolve(self, path: str, root: Path) -> Path:
        """A spec path made absolute against the source root."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else root / p


def load_spec(path: str | Path) -> BuildSpec:
    """Read and validate a build spec YAML; errors name the file and the offending key."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist; give a build spec YAML (see specs/movielens-100k-tmdb.yaml)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with keys name, interactions, items, ...")
    return parse_spec(raw, where=str(path))


def parse_spec(raw: dict, where: str = "spec") -> BuildSpec:
    """Validate a spec given as a dict."""
    try:
        return BuildSpec.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise ConfigError(f"{where}: {loc}: {err['msg']} ({len(e.errors())} problem(s) in all)") from None
