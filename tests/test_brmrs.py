"""BR-MRS: CHNS (Eq. 2), synergy-aware BPR (Eq. 4), the model (Sec. 2.1), plug-and-play, diagnostics."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml

import modalrec
from modalrec.cli.main import main as cli_main
from modalrec.evaluate.diagnostics import CASES, diagnose_run, taxonomy, taxonomy_codes
from modalrec.graphs.homogeneous import homogeneous_topk, interest_vectors
from modalrec.models.base import Batch, Representations
from modalrec.models.registry import build_model
from modalrec.objectives import NegativeSampler, build_objective
from modalrec.objectives.chns import chns_terms, cross_assign, modality_negatives
from modalrec.objectives.synergy import synergy_loss, synergy_term

FAST = {"train.epochs": 2, "threads": 1, "train.batch_size": 256}


def score_reps(tables: dict[str, list[float]]) -> Representations:
    """1-d embeddings: user 0 = [1], item j of branch b = [tables[b][j]], so s_b(0, j) = tables[b][j]."""
    users = {b: torch.ones(1, 1) for b in tables}
    items = {b: torch.tensor(v, dtype=torch.float32)[:, None] for b, v in tables.items()}
    return Representations(users, items)


# -- CHNS ----------------------------------------------------------------------------------


def test_chns_cross_assigns_the_other_modalitys_argmax():
    pool = torch.tensor([[0, 1, 2]])
    reps = score_reps({"fused": [0, 0, 9], "image": [1.0, 5.0, 2.0], "text": [4.0, 0.0, 3.0]})
    negs = modality_negatives(reps, torch.tensor([0]), pool, ["image", "text"], "chns")
    assert negs["image"].item() == 0  # image branch trained against i_t- = argmax s_t
    assert negs["text"].item() == 1  # text branch trained against i_v- = argmax s_v
    own = modality_negatives(reps, torch.tensor([0]), pool, ["image", "text"], "same_modality_hard")
    assert (own["image"].item(), own["text"].item()) == (1, 0)
    fused = modality_negatives(reps, torch.tensor([0]), pool, ["image", "text"], "fused_hard")
    assert fused["image"].item() == fused["text"].item() == 2
    uni = modality_negatives(reps, torch.tensor([0]), pool, ["image", "text"], "uniform")
    assert (uni["image"].item(), uni["text"].item()) == (1, 2)  # distinct uniform pool columns


def test_chns_own_adds_the_branchs_own_hardest_negative():
    pool = torch.tensor([[0, 1, 2]])
    reps = score_reps({"fused": [0, 0, 0], "image": [1.0, 5.0, 2.0], "text": [4.0, 0.0, 3.0]})
    negs = modality_negatives(reps, torch.tensor([0]), pool, ["image", "text"], "chns_own")
    assert negs["image"].tolist() == [[0, 1]] and negs["text"].tolist() == [[1, 0]]  # [cross, own]
    # BPR over K negatives = mean of the per-negative BPR terms (positive item 2 for both branches)
    terms = chns_terms(reps, torch.tensor([0]), torch.tensor([2]), negs)
    sp = torch.nn.functional.softplus
    want = (sp(torch.tensor(1.0 - 2.0)) + sp(torch.tensor(5.0 - 2.0))) / 2
    assert terms["image"].item() == pytest.approx(want.item(), rel=1e-6)


def test_two_modalities_reduce_exactly_to_eq2_for_mean_and_max():
    g = torch.Generator().manual_seed(0)
    scores = {"image": torch.randn(50, 8, generator=g), "text": torch.randn(50, 8, generator=g)}
    pool = torch.arange(400).view(50, 8)
    for reduce in ("mean", "max"):
        out = cross_assign(scores, pool, reduce)
        assert torch.equal(out["image"], pool.gather(1, scores["text"].argmax(1, keepdim=True)).squeeze(1))
        assert torch.equal(out["text"], pool.gather(1, scores["image"].argmax(1, keepdim=True)).squeeze(1))


def test_three_modality_rule_uses_the_other_branches_mean_or_max():
    pool = torch.tensor([[10, 11, 12]])
    s = {
        "a": torch.tensor([[9.0, 9.0, 9.0]]),
        "b": torch.tensor([[3.0, 0.0, 2.0]]),
        "c": torch.tensor([[0.0, 4.0, 2.0]]),
    }
    mean = cross_assign(s, pool, "mean")
    # a: mean(b, c) = [1.5, 2, 2] -> first max at 11; b: mean(a, c) = [4.5, 6.5, 5.5] -> 11; c: mean(a, b) -> 10
    assert (mean["a"].item(), mean["b"].item(), mean["c"].item()) == (11, 11, 10)
    mx = cross_assign(s, pool, "max")
    # a: max(b, c) = [3, 4, 2] -> 11; b: max(a, c) = 9s -> 10 (first); c: max(a, b) = 9s -> 10
    assert (mx["a"].item(), mx["b"].item(), mx["c"].item()) == (11, 10, 10)


def test_hard_negative_mining_is_gradient_free_and_chns_grads_stay_in_their_branch():
    torch.manual_seed(0)
    params = {
        b: (torch.randn(4, 3, requires_grad=True), torch.randn(20, 3, requires_grad=True))
        for b in ("fused", "image", "text")
    }
    reps = Representations({b: u for b, (u, _) in params.items()}, {b: i for b, (_, i) in params.items()})
    users, pos = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3])
    pool = torch.arange(4, 20).view(4, 4)
    negs = modality_negatives(reps, users, pool, ["image", "text"], "chns")
    assert not negs["image"].requires_grad
    terms = chns_terms(reps, users, pos, negs)
    terms["image"].backward()
    assert params["image"][0].grad is not None and params["image"][0].grad.abs().sum() > 0
    for b in ("text", "fused"):
        assert params[b][0].grad is None and params[b][1].grad is None


# -- synergy-aware BPR ----------------------------------------------------------------------


def test_synergy_loss_hand_value_and_monotonicity():
    v = synergy_loss(torch.tensor([2.0]), [torch.tensor([0.5]), torch.tensor([1.0])], 0.5)
    assert v.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.5))), rel=1e-6)  # -log sigma(2 - 1 - 0.5)
    losses = [
        synergy_loss(torch.tensor([df]), [torch.tensor([0.3]), torch.tensor([1.0])], 0.1).item()
        for df in (-1, 0, 1, 2, 4)
    ]
    assert all(a > b for a, b in zip(losses, losses[1:]))  # falls as Delta_f grows
    higher_best = synergy_loss(torch.tensor([1.0]), [torch.tensor([0.3]), torch.tensor([2.0])], 0.1)
    assert higher_best.item() > losses[2]  # rises as max_m Delta_m grows


def test_synergy_gradient_signs_and_branches():
    df = torch.tensor([1.0], requires_grad=True)
    dt = torch.tensor([0.2], requires_grad=True)
    dv = torch.tensor([0.7], requires_grad=True)
    synergy_loss(df, [dt, dv], 0.1).backward()
    assert df.grad.item() < 0 and dv.grad.item() > 0 and dt.grad.item() == 0  # only the best modality is pushed
    torch.manual_seed(1)
    params = {
        b: (torch.randn(2, 3, requires_grad=True), torch.randn(6, 3, requires_grad=True))
        for b in ("fused", "image", "text")
    }
    reps = Representations({b: u for b, (u, _) in params.items()}, {b: i for b, (_, i) in params.items()})
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 3])
    # make image the best branch for row 0 and text for row 1
    with torch.no_grad():
        params["image"][0][0] = 5 * (params["image"][1][0] - params["image"][1][2])
        params["text"][0][1] = 5 * (params["text"][1][1] - params["text"][1][3])
    synergy_term(reps, users, pos, neg, ["image", "text"], 0.1).backward()
    for b in ("fused", "image", "text"):
        assert params[b][0].grad.abs().sum() > 0


# -- objective + model -----------------------------------------------------------------------


def _objective(tiny, model="brmrs", **loss):
    cfg = modalrec.make_config(
        model, "synthetic:tiny", overrides={"objective": "brmrs", **{f"loss.{k}": v for k, v in loss.items()}}
    )
    m = build_model(model, tiny, cfg.params)
    sampler = NegativeSampler(tiny.train)
    return cfg, m, build_objective(cfg, m, tiny, sampler), sampler


def test_pools_exclude_training_positives(tiny):
    _, _, obj, sampler = _objective(tiny, pool_size=32)
    coo = tiny.train.tocoo()
    batch = Batch(
        torch.from_numpy(coo.row[:300].astype(np.int64)),
        torch.from_numpy(coo.col[:300].astype(np.int64)),
        torch.zeros(300, dtype=torch.long),
    )
    obj.prepare(batch, np.random.default_rng(0))
    pool = batch.extra["pool"].numpy()
    assert pool.shape == (300, 32)
    users = np.repeat(batch.users.numpy()[:, None], 32, axis=1)
    dense = tiny.train.toarray().astype(bool)
    assert not dense[users, pool].any()


def test_brmrs_model_branch_gradients(tiny):
    cfg, model, obj, _ = _objective(tiny)
    model = build_model("brmrs", tiny, {**cfg.params, "fusion": "gate"})
    reps = model()
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8])
    chns_terms(reps, users, pos, {"image": neg})["image"].backward(retain_graph=True)
    text_params = [model.proj["text"].weight, model.user_emb["text"], model.item_emb["text"]]
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in text_params)
    assert model.fuse_items.gate.weight.grad is None
    assert model.proj["image"].weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    synergy_term(reps, users, pos, neg, ["image", "text"], 0.1).backward()
    assert model.fuse_items.gate.weight.grad.abs().sum() > 0
    for m in ("image", "text"):
        assert model.proj[m].weight.grad.abs().sum() > 0


def test_objective_terms_and_optional_fused_bpr(tiny):
    _, model, obj, _ = _objective(tiny, bpr_weight=1.0)
    batch = Batch(
        torch.tensor([0, 1]),
        torch.tensor([int(tiny.train[0].indices[0]), int(tiny.train[1].indices[0])]),
        torch.tensor([0, 0]),
    )
    obj.prepare(batch, np.random.default_rng(0))
    assert set(obj(model(), batch)) == {"chns", "syn", "bpr"}
    _, model, obj, _ = _objective(tiny, syn_weight=0.0)
    obj.prepare(batch, np.random.default_rng(0))
    assert set(obj(model(), batch)) == {"chns"}


def test_homogeneous_graph_matches_dense_eq1():
    rng = np.random.default_rng(0)
    r = sp.csr_matrix((rng.random((15, 9)) < 0.3).astype(np.float32))  # 15 nodes x 9 neighbours
    feats = {"a": rng.standard_normal((15, 4)).astype(np.float32), "b": rng.standard_normal((15, 6)).astype(np.float32)}
    alpha, betas, k = 0.3, {"a": 0.25, "b": 0.75}, 4
    got = homogeneous_topk(r, feats, alpha, betas, k, chunk=4).toarray()
    d = r.toarray()
    inter, union = d @ d.T, d.sum(1)[:, None] + d.sum(1)[None, :] - d @ d.T
    jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    cos = sum(
        betas[m] * (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T
        for m, x in feats.items()
    )
    full = alpha * jac + (1 - alpha) * cos
    np.fill_diagonal(full, -np.inf)
    for i in range(15):
        top = np.argsort(-full[i])[:k]
        top = top[full[i, top] > 0]
        assert set(np.flatnonzero(got[i])) == set(top)
        np.testing.assert_allclose(got[i, top], full[i, top], rtol=1e-5)
    iv = interest_vectors(r, np.eye(9, dtype=np.float32))
    np.testing.assert_allclose(iv[0], d[0] / max(d[0].sum(), 1))


def test_brmrs_trains_with_falling_loss(tiny, tmp_path):
    run = modalrec.train("brmrs", tiny, overrides={**FAST, "train.epochs": 6}, out=tmp_path / "r")
    losses = [h["loss"] for h in run.history]
    assert {"chns", "syn"} <= set(run.history[0])  # the brmrs model trains with its own objective by default
    assert losses[-1] < losses[0]
    assert all(np.isfinite(losses))


@pytest.mark.parametrize("model", ["vbpr", "freedom"])
def test_plug_and_play_keeps_the_models_own_terms(tiny, tmp_path, model):
    run = modalrec.train(model, tiny, overrides={**FAST, "objective": "brmrs"}, out=tmp_path / model)
    keys = set(run.history[0])
    assert {"chns", "syn"} <= keys and "bpr" not in keys
    if model == "vbpr":
        assert "reg" in keys  # VBPR's own L2 rule
    if model == "freedom":
        assert {"freedom_image_bpr", "freedom_text_bpr"} <= keys


def test_model_without_modality_branches_fails_cleanly(tmp_path, capsys):
    rc = cli_main(
        [
            "train",
            "lightgcn",
            "--data",
            "synthetic:tiny",
            "--out",
            str(tmp_path / "x"),
            "--no-progress",
            "objective=brmrs",
            "train.epochs=1",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "exposes only the fused branch" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# -- diagnostics -----------------------------------------------------------------------------


def test_taxonomy_partitions_all_eight_hit_patterns():
    pats = np.array(list(itertools.product([True, False], repeat=3)))  # (a, b, f)
    codes = taxonomy_codes(pats[:, 0], pats[:, 1], pats[:, 2])
    want = {
        (1, 1, 1): "redundant",
        (1, 1, 0): "fusion_degraded",
        (1, 0, 1): "a_unique",
        (1, 0, 0): "a_unique",
        (0, 1, 1): "b_unique",
        (0, 1, 0): "b_unique",
        (0, 0, 1): "synergy",
        (0, 0, 0): "all_fail",
    }
    for p, c in zip(pats.astype(int), codes):
        assert CASES[c] == want[tuple(p)]
    t = taxonomy(pats[:, 0], pats[:, 1], pats[:, 2], "text", "audio")
    assert t["text_unique"]["count"] == 2 and t["audio_unique"]["count"] == 2 and t["synergy"]["count"] == 1
    assert sum(v["share"] for v in t.values()) == pytest.approx(1.0)


def test_diagnose_tiny_run(tiny, tmp_path, capsys):
    run = modalrec.train("brmrs", tiny, overrides=FAST, out=tmp_path / "d")
    d = diagnose_run(run.dir)
    assert json.loads((Path(run.dir) / "diagnostics.json").read_text())["taxonomy"] == d["taxonomy"]
    assert d["pair"] == ["image", "text"] and d["objective"] == "brmrs"
    assert (
        sum(v["count"] for v in d["taxonomy"].values()) == d["n_users"] == np.diff(tiny.test.indptr).astype(bool).sum()
    )
    assert d["branches"]["fused"]["recall@20"] == pytest.approx(run.evaluate(("test",))["test"]["recall@20"])
    # fused hits = redundant + synergy + the unique users on which fused also hits; bounded by the table
    hit_f = d["branches"]["fused"]["hit@20"] * d["n_users"]
    t = d["taxonomy"]
    assert (
        t["redundant"]["count"] + t["synergy"]["count"]
        <= round(hit_f)
        <= d["n_users"] - t["all_fail"]["count"] - t["fusion_degraded"]["count"]
    )
    n_reason = sum(v["n"] for v in d["reasons"]["fused"].values())
    assert n_reason == tiny.test.nnz
    assert cli_main(["diagnose", str(run.dir), "--pair", "text,image"]) == 0
    assert "text_unique" in capsys.readouterr().out
    assert cli_main(["diagnose", str(run.dir), "--pair", "text,audio"]) == 2


# -- study specs ---------------------------------------------------------------------------------


def _trials(spec: dict):
    axes = spec.get("axes", {})
    groups = [[dict(zip(g, vals)) for vals in zip(*g.values())] for g in spec.get("zip", [])]
    for combo in itertools.product(*axes.values(), *groups):
        ov = dict(zip(axes, combo[: len(axes)]))
        for g in combo[len(axes) :]:
            ov.update(g)
        if any(all(ov.get(k) == v for k, v in ex.items()) for ex in spec.get("exclude", [])):
            continue
        yield ov


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "studies" / "brmrs").glob("*.yaml")), ids=lambda p: p.name
)
def test_study_specs_resolve_to_valid_configs(path):
    spec = yaml.safe_load(path.read_text())
    assert spec["name"] and spec["base"]
    n = 0
    for ov in _trials(spec):
        cfg = modalrec.make_config(config=spec["base"], overrides=ov)
        assert "/work" not in str(cfg.data.source)
        n += 1
    assert n > 0
    try:  # the sweep runner's own expansion, when the experiments package is present
        from modalrec.experiments.spec import expand, load_spec
    except ImportError:
        return
    assert len(expand(load_spec(path))) > 0
