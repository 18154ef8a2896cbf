"""Metrics against hand-computed values and a naive per-user reference."""

import math

import numpy as np
import pytest

from modalrec.evaluate.metrics import metrics_from_hits


def naive(ranked: list[int], relevant: set[int], k: int) -> dict[str, float]:
    top = ranked[:k]
    hits = [1 if i in relevant else 0 for i in top]
    n = len(relevant)
    dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
    idcg = sum(1 / math.log2(r + 2) for r in range(min(k, n)))
    ap = sum(sum(hits[: r + 1]) / (r + 1) for r, h in enumerate(hits) if h) / min(k, n)
    return {
        "recall": sum(hits) / n,
        "precision": sum(hits) / k,
        "ndcg": dcg / idcg,
        "map": ap,
        "hit": float(sum(hits) > 0),
    }


def test_hand_computed_example():
    # user with 3 held-out items; hits at ranks 1 and 3 of the top 4
    hits = np.array([[1, 0, 1, 0]])
    m = metrics_from_hits(hits, np.array([3]), [2, 4], ["recall", "precision", "ndcg", "map", "hit"])
    assert m["recall@2"] == pytest.approx(1 / 3)
    assert m["recall@4"] == pytest.approx(2 / 3)
    assert m["precision@4"] == pytest.approx(0.5)
    assert m["hit@2"] == 1.0
    # DCG = 1 + 1/log2(4) = 1.5; IDCG@4 over min(4, 3) = 1 + 1/log2 3 + 1/2
    assert m["ndcg@4"] == pytest.approx(1.5 / (1 + 1 / math.log2(3) + 0.5))
    # AP@4 = (1/1 + 2/3) / min(4, 3)
    assert m["map@4"] == pytest.approx((1 + 2 / 3) / 3)
    # ndcg@2: DCG 1, IDCG over min(2, 3) = 2 positions
    assert m["ndcg@2"] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_against_naive_reference():
    rng = np.random.default_rng(0)
    n_items, K = 30, [1, 5, 10]
    users_hits, n_pos, ref = [], [], {f"{m}@{k}": [] for k in K for m in ["recall", "precision", "ndcg", "map", "hit"]}
    for _ in range(50):
        rel = set(rng.choice(n_items, size=rng.integers(1, 12), replace=False).tolist())
        ranked = rng.permutation(n_items).tolist()
        users_hits.append([1 if i in rel else 0 for i in ranked[:10]])
        n_pos.append(len(rel))
        for k in K:
            for name, v in naive(ranked, rel, k).items():
                ref[f"{name}@{k}"].append(v)
    m = metrics_from_hits(np.array(users_hits), np.array(n_pos), K, ["recall", "precision", "ndcg", "map", "hit"])
    for key, vals in ref.items():
        assert m[key] == pytest.approx(np.mean(vals)), key
