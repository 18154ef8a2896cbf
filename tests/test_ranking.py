"""Full ranking: masks, the mmrec_compat switch, and agreement with a naive loop."""

import numpy as np
import torch

from modalrec.data.dataset import Dataset
from modalrec.evaluate.ranking import rank


def _ds():
    # 2 users, 5 items. user 0: train {0}, valid {1}, test {2}; user 1: train {3}, valid {4}, test {0}
    return Dataset.from_pairs(
        "t",
        2,
        5,
        {
            "train": (np.array([0, 1]), np.array([0, 3])),
            "valid": (np.array([0, 1]), np.array([1, 4])),
            "test": (np.array([0, 1]), np.array([2, 0])),
        },
    )


def test_train_and_valid_masked_at_test_time():
    ds = _ds()
    # scores prefer train item, then valid item, then test item
    s = torch.tensor([[9.0, 8.0, 7.0, 0.0, 0.0], [7.0, 0.0, 0.0, 9.0, 8.0]])
    res = rank(lambda ub: s[ub], ds, topk=[1], metrics=["recall"])
    assert res.metrics["valid"]["recall@1"] == 1.0  # train item masked -> valid item first
    assert res.metrics["test"]["recall@1"] == 1.0  # train and valid masked -> test item first
    compat = rank(lambda ub: s[ub], ds, topk=[1], metrics=["recall"], mmrec_compat=True)
    assert compat.metrics["test"]["recall@1"] == 0.0  # toolbox: valid item stays rankable and counts as a miss


def test_matches_naive_loop():
    rng = np.random.default_rng(1)
    from modalrec.data.synthetic import generate

    ds = generate("tiny", seed=3)
    s = torch.from_numpy(rng.standard_normal((ds.n_users, ds.n_items)).astype(np.float32))
    res = rank(lambda ub: s[ub], ds, topk=[5], metrics=["recall"], batch_users=7)
    for split in ("valid", "test"):
        vals = []
        for u in range(ds.n_users):
            held = set(ds.split(split)[u].indices)
            if not held:
                continue
            sc = s[u].clone()
            masked = set(ds.train[u].indices) | (set(ds.valid[u].indices) if split == "test" else set())
            sc[list(masked)] = -np.inf
            top = torch.topk(sc, 5).indices.tolist()
            vals.append(len(held & set(top)) / len(held))
        assert (
            res.metrics[split]["recall@5"] == np.float64(np.mean(vals))
            or abs(res.metrics[split]["recall@5"] - np.mean(vals)) < 1e-12
        )
