"""Backbone zoo, part A: MGCN, LATTICE, SMORE, MIG-GT train, expose branches, and evaluate deterministically."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from modalrec.errors import DataError
from modalrec.models import Batch, build_model
from modalrec.models.registry import resolve_params

MODELS = ["mgcn", "lattice", "smore", "mig-gt"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP contention on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _batch(ds, n: int = 512, seed: int = 0) -> Batch:
    coo = ds.train.tocoo()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(coo.row))[:n]
    return Batch(
        torch.from_numpy(coo.row[idx].astype(np.int64)),
        torch.from_numpy(coo.col[idx].astype(np.int64)),
        torch.from_numpy(rng.integers(0, ds.n_items, len(idx))),
    )


def _loss(model, batch: Batch) -> torch.Tensor:
    reps = model()
    u = reps.user("fused", batch.users)
    p, n = reps.items_at("fused", batch.pos, batch.neg)
    terms = {"bpr": F.softplus((u * n).sum(-1) - (u * p).sum(-1)).mean(), **model.aux_losses(reps, batch)}
    reg = model.reg_loss(reps, batch)
    if reg is not None:
        terms["reg"] = reg
    return sum(terms.values())


@pytest.mark.parametrize("name", MODELS)
def test_trains_and_every_parameter_learns(tiny, name):
    torch.manual_seed(0)
    model = build_model(name, tiny, {})
    model.train()
    batch = _batch(tiny)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(25):
        torch.manual_seed(step)
        loss = _loss(model, batch)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert not silent, f"{name}: parameters without gradient: {silent}"
        opt.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.02, losses


@pytest.mark.parametrize("name", MODELS)
def test_branches_and_deterministic_evaluation(tiny, name):
    torch.manual_seed(0)
    model = build_model(name, tiny, {})
    assert model.branch_names(tiny) == ["fused", *tiny.features]
    model.eval()
    with torch.no_grad():
        a = model.ranking_representations()
        b = model.ranking_representations()
    assert sorted(a.branches) == sorted(["fused", *tiny.features])
    for br in a.branches:
        assert a.users[br].shape == (tiny.n_users, a.all_items(br).shape[1])
        assert a.all_items(br).shape[0] == tiny.n_items
        assert torch.equal(a.users[br], b.users[br]) and torch.equal(a.all_items(br), b.all_items(br))


@pytest.mark.parametrize("name", MODELS)
def test_propagates_on_the_dataset_graph_not_the_supervision_edges(tiny, name):
    """An edited propagation graph (half the edges) changes the representations; supervision stays."""
    coo = tiny.train.tocoo()
    keep = np.arange(len(coo.row)) % 2 == 0
    half = sp.csr_matrix((np.ones(keep.sum(), np.float32), (coo.row[keep], coo.col[keep])), shape=tiny.train.shape)
    reps = []
    for ds in (tiny, tiny.replace(graph_edges=half)):
        torch.manual_seed(0)
        m = build_model(name, ds, {})
        m.eval()
        with torch.no_grad():
            reps.append(m.ranking_representations().users["fused"])
    assert not torch.allclose(reps[0], reps[1])


@pytest.mark.parametrize("name", MODELS)
def test_trainer_runs(tiny, name, tmp_path):
    import modalrec

    run = modalrec.train(name, tiny, overrides={"train.epochs": 2, "train.batch_size": 256}, out=tmp_path / "r")
    assert math.isfinite(run.metrics["valid"]["recall@20"])
    assert run.recommend([0, 1], k=5).shape == (2, 5)


@pytest.mark.parametrize("name", MODELS)
def test_brmrs_objective_plugs_in(tiny, name, tmp_path):
    from modalrec.objectives import OBJECTIVES

    if "brmrs" not in OBJECTIVES:
        pytest.skip("objective brmrs not available yet")
    import modalrec

    ov = {"train.epochs": 1, "train.batch_size": 256, "objective": "brmrs"}
    run = modalrec.train(name, tiny, overrides=ov, out=tmp_path / "r")
    assert math.isfinite(run.metrics["valid"]["recall@20"])


def test_two_modality_models_take_any_names_and_reject_one(tiny):
    renamed = tiny.replace(features={"text": tiny.features["text"], "audio": tiny.features["image"]})
    m = build_model("smore", renamed, {})
    assert m.branch_names(renamed) == ["fused", "text", "audio"]
    m.eval()
    with torch.no_grad():
        assert set(m.ranking_representations().branches) == {"fused", "text", "audio"}
    with pytest.raises(DataError, match="at least 2"):
        build_model("smore", tiny.replace(features={"text": tiny.features["text"]}), {})
    for name in ("mgcn", "lattice", "mig-gt"):  # these work with one modality
        one = build_model(name, tiny.replace(features={"audio": tiny.features["image"]}), {})
        assert one.branch_names(tiny.replace(features={"audio": tiny.features["image"]})) == ["fused", "audio"]


def test_published_per_dataset_defaults():
    assert resolve_params("smore", "baby", {}).image_knn_k == 40
    assert resolve_params("smore", "sports", {}).cl_loss == 0.03
    assert resolve_params("mig-gt", "clothing", {}).k_v == 0
    assert resolve_params("mig-gt", "baby", {"k_v": 2}).k_v == 2  # the run's params win
    assert resolve_params("mgcn", "baby", {}).knn_k == 10


def test_smore_fusion_graph_is_elementwise_max():
    from modalrec.models.smore import max_fusion

    a = sp.csr_matrix(np.array([[0.5, 0.2, 0], [0, 0.5, 0], [0.1, 0, 0.5]], np.float32))
    b = sp.csr_matrix(np.array([[0.4, 0, 0.3], [0, 0.6, 0], [0.2, 0, 0.5]], np.float32))
    expect = np.array([[0.5, 0.2, 0.3], [0, 0.6, 0], [0.2, 0, 0.5]], np.float32)
    np.testing.assert_allclose(max_fusion([a, b]).toarray(), expect)


def test_smore_spectral_fusion_is_circular_convolution(tiny):
    """With all-ones filters, irfft(F_a F_b) = circular convolution of a and b (ortho norm: / sqrt(d))."""
    m = build_model("smore", tiny, {"dim": 8})
    with torch.no_grad():
        for p in [*m.filters.values(), m.fusion_filter]:
            p.zero_()
            p[..., 0] = 1.0
        a, b = torch.randn(3, 8), torch.randn(3, 8)
        den, fus = m.spectrum({"text": a, "image": b})
    conv = torch.stack([sum(a[:, j] * b[:, (t - j) % 8] for j in range(8)) for t in range(8)], dim=1) / math.sqrt(8)
    torch.testing.assert_close(fus, conv, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(den["text"], a, atol=1e-5, rtol=1e-5)


def test_mgcn_with_one_modality_fuses_to_half_the_view(tiny):
    """M = 1: common = the view, specific = 0, so side = view / 2 (the (M + 1)-mean of the fuser)."""
    ds = tiny.replace(features={"text": tiny.features["text"]})
    torch.manual_seed(0)
    m = build_model("mgcn", ds, {})
    m.eval()
    with torch.no_grad():
        reps = m()
    view = torch.cat([reps.users["text"], reps.items["text"]])
    torch.testing.assert_close(reps.extras["side"](None), view / 2)


def test_mgcn_fusion_on_batch_rows_equals_the_full_fusion(tiny):
    """The fuser runs on the batch's rows only during training; it must equal the all-rows result."""
    torch.manual_seed(0)
    m = build_model("mgcn", tiny, {})
    with torch.no_grad():
        reps = m()
        full_u, full_i = reps.all_users("fused"), reps.all_items("fused")
        u, i = torch.tensor([3, 0, 3, 7]), torch.tensor([5, 5, 1])
        torch.testing.assert_close(reps.user("fused", u), full_u[u])
        torch.testing.assert_close(reps.item("fused", i), full_i[i])
        side = reps.extras["side"]
        torch.testing.assert_close(side(u), side(None)[u])


def test_lattice_learned_graph_is_sparse_and_gradient_follows_mode(tiny):
    for mode, second_step_grad in (("first_step", False), ("every_step", True)):
        torch.manual_seed(0)
        m = build_model("lattice", tiny, {"learned_grad": mode})
        m.train()
        batch = _batch(tiny)
        grads = []
        for _ in range(2):
            m.zero_grad(set_to_none=True)
            _loss(m, batch).backward()
            g = m.feats.proj["image"].weight.grad
            grads.append(g is not None and bool(g.abs().sum() > 0))
        assert grads == [True, second_step_grad], mode
        k, n_mod = m.p.knn_k, len(tiny.features)
        rows, cols, vals = m._graphs()["fused"]
        assert len(vals) <= 2 * n_mod * k * tiny.n_items  # learned + original edges, never I x I
    m.pre_epoch(1, np.random.default_rng(0))
    assert m._new_epoch


def test_miggt_gamma_and_dropped_graph_transpose():
    from modalrec.graphs import bipartite_adjacency
    from modalrec.models.miggt import DroppableGraph, mgdcf_gamma

    assert mgdcf_gamma(0.1, 0.9, 0) == 1.0
    assert mgdcf_gamma(0.2, 0.5, 2) == pytest.approx(0.25 + 0.2 * 1.5)
    r = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], np.float32))
    g = DroppableGraph(bipartite_adjacency(r, self_loops=True), "cpu")
    torch.manual_seed(0)
    op = g.dropped(0.5)
    dense = op.mat.to_dense()
    torch.testing.assert_close(op.mat_t.to_dense(), dense.T)
    kept = dense[dense != 0]
    full = g.full.mat.to_dense()
    torch.testing.assert_close(kept, 2 * full[dense != 0])  # survivors scaled by 1 / (1 - p)


def test_miggt_eval_uses_fixed_samples_and_training_resamples(tiny):
    torch.manual_seed(0)
    m = build_model("mig-gt", tiny, {})
    m.train()
    s1, s2 = m().extras["samples"], m().extras["samples"]
    assert not torch.equal(s1, s2)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m().extras["samples"], m.eval_samples)


def test_bfloat16_feature_projection_matches_float32(tiny):
    from modalrec.models.features import FeatureProjector

    torch.manual_seed(0)
    full = FeatureProjector(tiny, 16)
    low = FeatureProjector(tiny, 16, precision="bfloat16")
    low.load_state_dict(full.state_dict())
    a, b = full("image"), low("image")
    assert low.raw("image").dtype == torch.bfloat16 and b.dtype == torch.float32
    assert (a - b).norm() / a.norm() < 2e-2
    b.sum().backward()
    assert low.proj["image"].weight.grad is not None and low.proj["image"].weight.grad.dtype == torch.float32


def test_miggt_own_token_attention_equals_full_token_attention():
    """The per-node fast path (q/k projected once, gathered) equals attention over explicit token sets."""
    from modalrec.models.miggt import GlobalAttention

    torch.manual_seed(0)
    att = GlobalAttention(8)
    z = torch.randn(20, 8)
    items, samples = z[5:], torch.randint(0, 15, (20, 4))
    tokens = torch.cat([z.unsqueeze(1), items[samples]], dim=1)
    torch.testing.assert_close(att.own(z, items, samples), att(tokens)[:, 0])


def test_lattice_reuses_the_evaluation_knn_search_until_projections_change(tiny):
    torch.manual_seed(0)
    m = build_model("lattice", tiny, {})
    m.eval()
    with torch.no_grad():
        m.ranking_representations()
    picked = m._knn["image"][1]
    m.train()
    m.pre_epoch(1, np.random.default_rng(0))
    loss = _loss(m, _batch(tiny))
    assert m._knn["image"][1] is picked  # same projections: the evaluation's kNN indices are reused
    torch.optim.SGD(m.parameters(), lr=0.5).zero_grad()
    loss.backward()
    torch.optim.SGD(m.parameters(), lr=0.5).step()
    m.pre_epoch(2, np.random.default_rng(0))
    _loss(m, _batch(tiny))
    assert m._knn["image"][1] is not picked
