"""Synthetic multimodal data with planted synergy (the BR-MRS empirical-study design).

Each item has four latents z_t, z_v, z_s, z_r ~ N(0, I_k). Text sees [z_t; A z_s; z_r] and
image sees [z_v; B z_s; z_r] (plus noise), where A and B project onto complementary halves of a
random basis, so the synergy latent z_s is recoverable only from both modalities together. Users
have preferences theta_c per component and true scores s* = sum_c gamma_c <theta_c, z_c>
(+ an item popularity term); positives are drawn by a Gumbel top-n_u over s*/temperature.
Each test positive is labelled with its dominant component ("reason").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from modalrec.data.dataset import Dataset
from modalrec.errors import DataError

REASONS = ("text", "image", "synergy", "redundant")


@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes and signal strengths of a synthetic dataset."""

    n_users: int
    n_items: int
    mean_degree: float
    text_dim: int
    image_dim: int
    latent: int = 16
    gamma: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # text, image, synergy, redundant
    feature_noise: float = 0.3
    temperature: float = 0.5
    popularity: float = 0.5
    min_degree: int = 5


PRESETS: dict[str, SyntheticSpec] = {
    "tiny": SyntheticSpec(n_users=120, n_items=90, mean_degree=9, text_dim=24, image_dim=32, latent=8),
    "small": SyntheticSpec(n_users=2000, n_items=1500, mean_degree=12, text_dim=384, image_dim=512, latent=16),
    "baby": SyntheticSpec(
        n_users=19445, n_items=7050, mean_degree=160792 / 19445, text_dim=384, image_dim=4096, latent=32
    ),
    "electronics": SyntheticSpec(
        n_users=192403, n_items=63001, mean_degree=1689188 / 192403, text_dim=384, image_dim=4096, latent=32
    ),
}


def _embed(z: np.ndarray, dim: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Map latent rows to ``dim`` dims by a fixed random linear map, plus isotropic noise."""
    w = rng.standard_normal((z.shape[1], dim), dtype=np.float32) / np.float32(np.sqrt(z.shape[1]))
    out = z @ w
    for s in range(0, len(out), 4096):  # noise in row chunks: no second full-size temporary
        block = rng.standard_normal(out[s : s + 4096].shape, dtype=np.float32)
        block *= np.float32(noise)
        out[s : s + 4096] += block
    return out


def community_split(n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MMRec's per-user rule: n < 10 -> 1 valid + 1 test; else vt = int(0.2 n), valid = vt // 2."""
    vt = np.where(n < 10, 2, (0.2 * n).astype(np.int64))
    valid = np.where(n < 10, 1, vt // 2)
    return np.stack([n - vt, valid, vt - valid], axis=1)


def generate(preset: str | SyntheticSpec = "small", seed: int = 0, **overrides: object) -> Dataset:
    """Generate a synthetic Dataset deterministically from ``seed``."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise DataError(f"unknown synthetic preset {preset!r}; choose from {', '.join(PRESETS)}")
        spec, name = PRESETS[preset], preset
    else:
        spec, name = preset, "custom"
    spec = replace(spec, **overrides) if overrides else spec
    rng = np.random.default_rng(seed)
    k, n_i, n_u = spec.latent, spec.n_items, spec.n_users

    z = {c: rng.standard_normal((n_i, k), dtype=np.float32) for c in REASONS}
    basis, _ = np.linalg.qr(rng.standard_normal((k, k)))
    half = k // 2
    a = (basis[:, :half] @ basis[:, :half].T).astype(np.float32)  # complementary projections: A + B = I
    b = (basis[:, half:] @ basis[:, half:].T).astype(np.float32)
    text_latent = np.concatenate([z["text"], z["synergy"] @ a.T, z["redundant"]], axis=1)
    image_latent = np.concatenate([z["image"], z["synergy"] @ b.T, z["redundant"]], axis=1)
    text = _embed(text_latent, spec.text_dim, spec.feature_noise, rng)
    image = _embed(image_latent, spec.image_dim, spec.feature_noise, rng)

    theta = {c: rng.standard_normal((n_u, k), dtype=np.float32) for c in REASONS}
    gamma = {c: np.float32(g) for c, g in zip(REASONS, spec.gamma)}
    scale = np.float32(1.0 / np.sqrt(k))
    pop = spec.popularity * rng.standard_normal(n_i).astype(np.float32)
    extra = rng.geometric(1.0 / max(1.0, spec.mean_degree - spec.min_degree + 1), size=n_u) - 1
    degree = np.minimum(spec.min_degree + extra, n_i // 2).astype(np.int64)

    # Positives: Gumbel top-n_u of s*/T per user, in user chunks (never U x I at once).
    users_theta = torch.from_numpy(np.concatenate([gamma[c] * scale * theta[c] for c in REASONS], axis=1))
    items_z = torch.from_numpy(np.concatenate([z[c] for c in REASONS], axis=1))
    pop_t = torch.from_numpy(pop)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    kmax = int(degree.max())
    rows, cols = [], []
    chunk = max(1, int(2**24 // n_i))
    for s in range(0, n_u, chunk):
        scores = (users_theta[s : s + chunk] @ items_z.T).add_(pop_t)
        gumbel = torch.rand(scores.shape, generator=gen).clamp_(1e-12, 1 - 1e-7).log_().neg_().log_()
        scores.div_(spec.temperature).sub_(gumbel)  # in place: two chunk-sized buffers, not five
        del gumbel
        top = torch.topk(scores, kmax, dim=1).indices.numpy()
        d = degree[s : s + chunk]
        keep = np.arange(kmax)[None, :] < d[:, None]
        rows.append(np.repeat(np.arange(s, s + len(d)), d))
        cols.append(top[keep])
    users, items = np.concatenate(rows), np.concatenate(cols)

    # Per-user random split with the community rule (seeded).
    order = np.lexsort((rng.random(len(users)), users))
    users, items = users[order], items[order]
    counts = community_split(degree, rng)
    starts = np.concatenate([[0], np.cumsum(degree)[:-1]])
    pos = np.arange(len(users)) - np.repeat(starts, degree)
    n_train = np.repeat(counts[:, 0], degree)
    n_train_valid = np.repeat(counts[:, :2].sum(1), degree)
    label = np.where(pos < n_train, 0, np.where(pos < n_train_valid, 1, 2))

    splits = {s: (users[label == j], items[label == j]) for j, s in enumerate(("train", "valid", "test"))}
    tu, ti = splits["test"]
    comp = np.stack([gamma[c] * scale * np.einsum("nk,nk->n", theta[c][tu], z[c][ti]) for c in REASONS], axis=1)
    extras = {"reason_user": tu, "reason_item": ti, "reason_code": comp.argmax(axis=1).astype(np.int64)}
    prov = {"source": f"synthetic:{name}", "seed": seed, "spec": asdict(spec), "reason_names": list(REASONS)}
    return Dataset.from_pairs(
        f"synthetic-{name}", n_u, n_i, splits, {"image": image, "text": text}, provenance=prov, extras=extras
    )
