"""Trust: stress corruptions, Modality-level Rectification (Sinkhorn) and collaborative-prior edge editing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from modalrec.config.schema import RectifyConfig
from modalrec.data.corrupt import corrupt_edges, derangement, permute_features
from modalrec.data.dataset import Dataset
from modalrec.graphs.edit import complete_edges, edge_scores, edit_dataset, prune_edges
from modalrec.rectify import keep_count, rectify_modality, row_normalize, sinkhorn, small_loss_mean, topk_affinity

FAST = {
    "train.epochs": 2,
    "train.batch_size": 256,
    "eval.topk": [10],
    "eval.metrics": ["recall"],
    "train.valid_metric": "recall@10",
    "threads": 1,
}


def _keys(m: sp.csr_matrix) -> set[tuple[int, int]]:
    c = m.tocoo()
    return set(zip(c.row.tolist(), c.col.tolist()))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# -- stress corruptions --------------------------------------------------------------------------------
def test_derangement_has_no_fixed_points():
    rng = np.random.default_rng(0)
    for n in (2, 3, 7, 50):
        p = derangement(n, rng)
        assert sorted(p.tolist()) == list(range(n)) and not np.any(p == np.arange(n))
    assert derangement(1, rng).tolist() == [0]  # impossible: reported as a fixed point


def test_feature_permutation_moves_exactly_floor_eta_n_rows(tiny):
    bad, rec = permute_features(tiny, {"image": 0.3, "text": 0.1}, seed=3)
    for m, eta in (("image", 0.3), ("text", 0.1)):
        r = rec[m]
        n = int(np.floor(eta * tiny.n_items))
        assert r["n"] == n == len(r["items"]) == len(np.unique(r["items"]))
        assert sorted(r["source"].tolist()) == sorted(r["items"].tolist())  # permuted among themselves
        assert r["fixed_points"] == 0 and np.all(r["source"] != r["items"])
        changed = np.flatnonzero(np.any(bad.features[m] != tiny.features[m], axis=1))
        assert changed.tolist() == r["items"].tolist()  # rows really moved, nothing else touched
        np.testing.assert_array_equal(bad.features[m][r["items"]], tiny.features[m][r["source"]])
    assert tiny.features["image"] is not bad.features["image"]  # the input Dataset is untouched
    again, _ = permute_features(tiny, {"image": 0.3, "text": 0.1}, seed=3)
    np.testing.assert_array_equal(again.features["image"], bad.features["image"])  # seeded


def test_single_row_permutation_reports_its_fixed_point(tiny):
    eta = 1.5 / tiny.n_items  # floor(eta * N) == 1
    _, rec = permute_features(tiny, {"image": eta}, seed=0)
    assert rec["image"]["n"] == 1 and rec["image"]["fixed_points"] == 1


def test_edge_deletion_removes_floor_eta_e_training_edges(tiny):
    bad, rec = corrupt_edges(tiny, -0.1, seed=1)
    n = int(np.floor(0.1 * tiny.train.nnz))
    assert rec["n"] == n and bad.train.nnz == tiny.train.nnz - n
    removed = set(zip(rec["users"].tolist(), rec["items"].tolist()))
    assert removed <= _keys(tiny.train) and not removed & _keys(bad.train)
    assert _keys(bad.train) | removed == _keys(tiny.train)
    assert (bad.valid != tiny.valid).nnz == 0 and (bad.test != tiny.test).nnz == 0


def test_edge_addition_never_hits_train_valid_or_test(tiny):
    bad, rec = corrupt_edges(tiny, 0.15, seed=2)
    n = int(np.floor(0.15 * tiny.train.nnz))
    added = set(zip(rec["users"].tolist(), rec["items"].tolist()))
    assert rec["n"] == n == len(added) and bad.train.nnz == tiny.train.nnz + n
    existing = _keys(tiny.train) | _keys(tiny.valid) | _keys(tiny.test)
    assert not added & existing
    assert _keys(bad.train) == _keys(tiny.train) | added


# -- rectification: parts --------------------------------------------------------------------------------
def _random_sparse(n: int, k: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    others = np.stack([rng.choice(n - 1, size=k - 1, replace=False) for _ in range(n)])
    others += others >= np.arange(n)[:, None]  # skip the diagonal, then add it (present as in Eq. 10)
    cols = np.concatenate([np.arange(n)[:, None], others], axis=1)
    cols = np.sort(cols, axis=1)
    vals = np.exp(rng.uniform(-1, 1, size=cols.shape) / 0.1)
    return sp.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sinkhorn_is_near_doubly_stochastic_on_random_sparse_input(seed):
    a = _random_sparse(300, 8, seed)
    p, info = sinkhorn(a, eps=1e-12, tol=1e-4, max_iter=5000)
    rows, cols = np.asarray(p.sum(1)).ravel(), np.asarray(p.sum(0)).ravel()
    err = max(np.abs(rows - 1).max(), np.abs(cols - 1).max())
    assert err < 2e-4 and info["error"] == pytest.approx(err, rel=1e-6)  # reported residual is the real one
    assert p.nnz == a.nnz and np.all(p.data > 0)  # same sparsity pattern: P = diag(u) A diag(v)


def test_row_normalisation_ablation_has_unit_rows_but_unbalanced_columns():
    a = _random_sparse(200, 6, 5)
    p, info = row_normalize(a)
    np.testing.assert_allclose(np.asarray(p.sum(1)).ravel(), 1.0, atol=1e-12)
    assert info["col_error"] > 0.1  # hubs keep their mass: what Sinkhorn removes


def test_small_loss_keeps_exactly_ceil_rho_b_lowest_losses():
    losses = torch.tensor(np.random.default_rng(0).permutation(200).astype(np.float32))
    for rho in (0.05, 0.25, 0.3, 0.75, 1.0):
        n = keep_count(200, rho)
        assert n == int(np.ceil(rho * 200 - 1e-9))
        loss, kept = small_loss_mean(losses, rho)
        assert len(kept) == n and set(losses[kept].tolist()) == set(range(n))  # the n smallest
        assert float(loss) == pytest.approx((n - 1) / 2)
    assert keep_count(10, 0.3) == 3 and keep_count(7, 0.01) == 1


def test_affinity_keeps_k_per_row_with_the_diagonal_and_exp_weights():
    rng = np.random.default_rng(0)
    anchors, proj = rng.standard_normal((50, 8)), rng.standard_normal((50, 8))
    a = topk_affinity(anchors, proj, k=5, tau=0.2, chunk=7)
    assert a.shape == (50, 50) and np.all(np.diff(a.indptr) == 5)
    assert np.all(a.diagonal() > 0)
    an = anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
    pn = proj / np.linalg.norm(proj, axis=1, keepdims=True)
    s = an @ pn.T
    for i in (0, 13, 49):
        row = a[i].toarray().ravel()
        cols = np.flatnonzero(row)
        np.testing.assert_allclose(row[cols], np.exp(s[i, cols] / 0.2), rtol=1e-5)
        others = np.setdiff1d(np.arange(50), [i])
        best = others[np.argsort(-s[i, others])[:4]]
        assert set(cols.tolist()) == set(best.tolist()) | {i}  # the diagonal takes one of the K slots


def test_rectification_recovers_permuted_features_with_informative_anchors():
    # Anchors = a noisy linear image of the TRUE features; rectification must move permuted rows back.
    torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscription on a shared machine
    rng = np.random.default_rng(0)
    n, d = 400, 32
    true = rng.standard_normal((n, d)).astype(np.float32)
    anchors = true @ rng.standard_normal((d, 16)).astype(np.float32) + 0.3 * rng.standard_normal((n, 16)).astype(
        np.float32
    )
    anchors /= np.linalg.norm(anchors, axis=1, keepdims=True)
    ds = Dataset.from_pairs(
        "x", 2, n, {s: (np.array([0]), np.array([0])) for s in ("train", "valid", "test")}, {"image": true}
    )
    bad, rec = permute_features(ds, {"image": 0.2}, seed=0)
    cfg = RectifyConfig(enabled=True, proj_epochs=40, proj_batch=200, proj_lr=0.01)
    out, rep = rectify_modality(bad.features["image"], anchors, cfg, rho=0.25)
    s = rec["image"]["items"]
    before, after = _cos(bad.features["image"][s], true[s]).mean(), _cos(out[s], true[s]).mean()
    assert after > before + 0.2, (before, after)
    assert out.shape == true.shape and out.dtype == np.float32
    assert rep["sinkhorn"]["error"] < 0.05


# -- rectification: end to end with LightGCN anchors -------------------------------------------------------
def test_rectification_raises_cosine_to_true_features_on_synthetic_data(tiny):
    from modalrec.rectify import rectify_dataset

    bad, rec = permute_features(tiny, {"image": 0.3, "text": 0.3}, seed=0)
    cfg = RectifyConfig(enabled=True, anchor_epochs=15, proj_epochs=20)
    fixed, rep = rectify_dataset(bad, cfg, threads=1)
    for m in ("image", "text"):
        s = rec[m]["items"]
        before = _cos(bad.features[m][s], tiny.features[m][s]).mean()
        after = _cos(fixed.features[m][s], tiny.features[m][s]).mean()
        print(m, "cos(permuted, true)", before, "cos(rectified, true)", after)
        assert after > before
        assert fixed.features[m].shape == tiny.features[m].shape
        assert rep["modalities"][m]["rho"] == pytest.approx(0.35)  # eta + 0.05 from the stress record
    # cached by content hash: the second call returns the same features without retraining
    again, rep2 = rectify_dataset(bad, cfg, threads=1)
    assert all(r.get("cached") for r in rep2["modalities"].values())
    np.testing.assert_array_equal(again.features["image"], fixed.features["image"])


# -- edge editing --------------------------------------------------------------------------------------------
def _prior(ds: Dataset, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((ds.n_users, d)).astype(np.float32), rng.standard_normal((ds.n_items, d)).astype(
        np.float32
    )


def test_prune_removes_exactly_the_bottom_r_training_edges(tiny):
    ue, ie = _prior(tiny)
    new, rec = prune_edges(tiny.train, ue, ie, 0.1)
    n = int(np.floor(0.1 * tiny.train.nnz))
    assert rec["removed"] == n and new.nnz == tiny.train.nnz - n
    c = tiny.train.tocoo()
    s = edge_scores(c.row.astype(np.int64), c.col.astype(np.int64), ue, ie)
    threshold = np.sort(s)[n - 1]
    assert rec["scores"].max() <= threshold + 1e-6  # every removed edge is among the n lowest
    kept = _keys(new)
    kept_scores = [s[j] for j, key in enumerate(zip(c.row.tolist(), c.col.tolist())) if key in kept]
    assert min(kept_scores) >= threshold - 1e-6


def test_complete_never_adds_valid_or_test_pairs(tiny):
    ue, ie = _prior(tiny, seed=1)
    holdout = (tiny.valid + tiny.test).tocsr()
    new, rec = complete_edges(tiny.train, ue, ie, 0.2, 10, holdout)
    added = set(zip(rec["users"].tolist(), rec["items"].tolist()))
    target = int(np.floor(0.2 * tiny.train.nnz))
    assert rec["target"] == target and rec["added"] == len(added) == target - rec["dropped_holdout"]
    assert not added & (_keys(tiny.valid) | _keys(tiny.test)) and not added & _keys(tiny.train)
    assert _keys(new) == _keys(tiny.train) | added
    # brute force (dense is fine at this size): Eq. 17-21
    sc = ue @ ie.T
    sc[tiny.train.toarray() > 0] = -np.inf
    cand = np.zeros_like(sc, dtype=bool)
    rows = np.arange(tiny.n_users)[:, None]
    cand[rows, np.argsort(-sc, axis=1)[:, :10]] = True
    cols = np.arange(tiny.n_items)[None, :]
    cand[np.argsort(-sc, axis=0)[:10, :], cols] = True
    cu, ci = np.nonzero(cand & np.isfinite(sc))
    top = np.argsort(-sc[cu, ci], kind="stable")[:target]
    expected = {(int(u), int(i)) for u, i in zip(cu[top], ci[top])} - (_keys(tiny.valid) | _keys(tiny.test))
    assert added == expected


def test_complete_drops_holdout_pairs_that_the_prior_ranks_highest(tiny):
    ue, ie = _prior(tiny, seed=2)
    c = tiny.test.tocoo()
    ie = ie.copy()
    ue = ue.copy()
    ue[c.row[0]] = 0
    ie[c.col[0]] = 0
    ue[c.row[0], 0], ie[c.col[0], 0] = 100.0, 100.0  # the best pair is a test pair
    _, rec = complete_edges(tiny.train, ue, ie, 0.05, 5, (tiny.valid + tiny.test).tocsr())
    assert rec["dropped_holdout"] >= 1 and (int(c.row[0]), int(c.col[0])) not in set(
        zip(rec["users"].tolist(), rec["items"].tolist())
    )


@pytest.mark.parametrize("where", ["train", "graph", "both"])
def test_edit_where_changes_supervision_or_propagation_and_keeps_the_original_mask(tiny, where):
    new, rec = edit_dataset(tiny, "prune", 0.1, where, prior=_prior(tiny))
    assert _keys(new.mask) == _keys(tiny.train)
    assert (new.train != tiny.train).nnz == (0 if where == "graph" else rec["removed"])
    assert (new.graph != tiny.train).nnz == (0 if where == "train" else rec["removed"])


def test_training_with_edit_masks_the_original_train(tmp_path):
    import modalrec

    ds = modalrec.load_dataset("synthetic:tiny")
    ov = {**FAST, "edit.op": "prune", "edit.ratio": 0.1, "edit.prior_epochs": 2}
    run = modalrec.train("lightgcn", ds, overrides=ov, out=tmp_path / "run")
    assert run.dataset.train.nnz == ds.train.nnz - int(np.floor(0.1 * ds.train.nnz))
    assert (run.dataset.mask != ds.train).nnz == 0  # evaluation filter = original training positives
    assert (run.dataset.graph != ds.train).nnz == 0  # where=train leaves propagation unchanged


# -- config + CLI -------------------------------------------------------------------------------------------
def test_config_stress_and_rectify_sections_apply_in_prepare_dataset(tiny):
    from modalrec.api import make_config, prepare_dataset

    cfg = make_config("vbpr", overrides={"stress.feature_permute.image": 0.2, "stress.edges": -0.1})
    ds = prepare_dataset(cfg, tiny)
    assert int(np.sum(np.any(ds.features["image"] != tiny.features["image"], axis=1))) == int(0.2 * tiny.n_items)
    assert ds.train.nnz == tiny.train.nnz - int(np.floor(0.1 * tiny.train.nnz))
    np.testing.assert_array_equal(ds.features["text"], tiny.features["text"])
    ov = {"stress.feature_permute.image": 0.2, "rectify.enabled": True, "rectify.anchor_epochs": 3}
    cfg = make_config("vbpr", overrides={**ov, "rectify.proj_epochs": 5, "threads": 1})
    rect = prepare_dataset(cfg, tiny)  # stress -> rectify: every image row is re-aggregated, shapes kept
    assert rect.features["image"].shape == tiny.features["image"].shape
    assert not np.allclose(rect.features["image"], ds.features["image"])
    assert rect.provenance["rectify"]["modalities"] == ["image", "text"]


def test_cli_corrupt_rectify_train_end_to_end(tmp_path, capsys):
    from modalrec.cli.main import main

    bad, fixed = tmp_path / "bad", tmp_path / "fixed"
    assert main(["corrupt", "synthetic:tiny", str(bad), "--permute", "image=0.2,text=0.2", "--edges", "-0.1"]) == 0
    rec = json.loads((bad / "corruption.json").read_text())
    assert rec["features"]["image"]["n"] == 18 and len(rec["features"]["image"]["items"]) == 18
    assert rec["edges"]["op"] == "delete" and len(rec["edges"]["users"]) == rec["edges"]["n"]
    assert main(["rectify", str(bad), str(fixed), "--anchor-epochs", "3", "--proj-epochs", "5", "--threads", "1"]) == 0
    rep = json.loads((fixed / "rectify.json").read_text())
    assert rep["modalities"]["image"]["rho"] == pytest.approx(0.25)  # eta 0.2 read from corruption.json
    for m, f in (("image", "image_feat.npy"), ("text", "text_feat.npy")):
        assert np.load(fixed / f).shape == np.load(bad / f).shape
        assert "sinkhorn" in rep["modalities"][m] and "seconds" in rep["modalities"][m]
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "vbpr",
                "--data",
                str(fixed),
                "--out",
                str(out),
                "--no-progress",
                "train.epochs=2",
                "eval.topk=[10]",
                "train.valid_metric=recall@10",
                "threads=1",
            ]
        )
        == 0
    )
    assert (out / "metrics.json").exists()
    assert main(["corrupt", "synthetic:tiny", str(tmp_path / "x"), "--permute", "image=oops"]) == 2
    assert "--permute expects" in capsys.readouterr().err


def test_feature_permute_all_corrupts_every_modality_independently(tiny):
    from modalrec.data.corrupt import apply_stress

    ds, rec = apply_stress(tiny, {"all": 0.2, "text": 0.1}, seed=0)
    assert rec["features"]["image"]["n"] == int(0.2 * tiny.n_items)
    assert rec["features"]["text"]["n"] == int(0.1 * tiny.n_items)  # an explicit modality wins over "all"
    assert ds.provenance["stress"]["feature_permute"]["image"]["ratio"] == 0.2


def test_corrupt_lastfm_text_and_audio(tmp_path):
    from conftest import shared_data

    from modalrec.data.corrupt import corrupt

    folder = shared_data("lastfm-2k")
    feats = {"text": "all-MiniLM-L6-v2.npy", "audio": "vggish.npy"}
    ds, rec = corrupt(
        folder, {"all": 0.1}, edges=0.05, seed=0, out=tmp_path / "bad", features=feats, inter="lfm2k.inter"
    )
    for m in ("text", "audio"):
        assert rec["features"][m]["n"] == int(np.floor(0.1 * ds.n_items)) and rec["features"][m]["fixed_points"] == 0
    assert json.loads((tmp_path / "bad" / "corruption.json").read_text())["edges"]["op"] == "add"
