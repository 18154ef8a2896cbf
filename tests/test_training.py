"""Training: sampler correctness, bit-reproducibility, resume equals uninterrupted, NaN handling."""

import json

import numpy as np
import pytest

import modalrec
from modalrec.errors import TrainingError
from modalrec.objectives.samplers import NegativeSampler


def test_sampler_excludes_training_positives(tiny):
    s = NegativeSampler(tiny.train)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(tiny.n_users), 50)
    neg = s.sample(users, rng)
    assert not np.asarray(tiny.train[users, neg]).any()
    pool = s.sample(np.arange(tiny.n_users), rng, n=7)
    assert pool.shape == (tiny.n_users, 7)
    assert not np.asarray(tiny.train[np.repeat(np.arange(tiny.n_users), 7), pool.ravel()]).any()


@pytest.mark.parametrize("model", ["bpr", "lightgcn", "vbpr", "freedom"])
def test_bit_reproducible(tiny, tmp_path, model):
    ov = {"train.epochs": 3}
    a = modalrec.train(model, tiny, seed=1, overrides=ov, out=tmp_path / "a")
    b = modalrec.train(model, tiny, seed=1, overrides=ov, out=tmp_path / "b")
    assert a.metrics["valid"] == b.metrics["valid"] and a.metrics["test"] == b.metrics["test"]
    for x, y in zip(a.history, b.history):
        assert x["loss"] == y["loss"]


def test_resume_matches_uninterrupted(tiny, tmp_path):
    ov = {"train.epochs": 6}
    full = modalrec.train("freedom", tiny, seed=2, overrides=ov, out=tmp_path / "full")

    def interrupt(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        modalrec.train("freedom", tiny, seed=2, overrides=ov, out=tmp_path / "cut", on_epoch_end=interrupt)
    assert not (tmp_path / "cut" / "metrics.json").exists()  # no result that looks complete
    resumed = modalrec.train("freedom", tiny, seed=2, overrides=ov, out=tmp_path / "cut", resume=True)
    assert resumed.metrics["test"] == full.metrics["test"]
    assert resumed.metrics["best_epoch"] == full.metrics["best_epoch"]
    hist = [json.loads(x) for x in (tmp_path / "cut" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == list(range(6))


def test_nan_loss_stops_with_message(tiny, tmp_path):
    bad = tiny.replace(features={m: f * 1e30 for m, f in tiny.features.items()})
    with pytest.raises(TrainingError, match="loss became"):
        modalrec.train("vbpr", bad, overrides={"train.epochs": 2, "train.lr": 1e10}, out=tmp_path / "r")


def test_model_selection_uses_validation(tiny, tmp_path):
    run = modalrec.train("lightgcn", tiny, overrides={"train.epochs": 8}, out=tmp_path / "r")
    hist = run.history
    best = max((h for h in hist if "valid" in h), key=lambda h: h["valid"]["recall@20"])
    assert run.metrics["best_epoch"] == best["epoch"]
    assert run.metrics["test"] == best["test"]


def test_recommend_excludes_training_items(tiny, tmp_path):
    run = modalrec.train("lightgcn", tiny, overrides={"train.epochs": 2}, out=tmp_path / "r")
    top = run.recommend([0, 1, 2], k=10)
    for u, row in zip([0, 1, 2], top):
        assert not set(row) & set(tiny.train[u].indices)


def test_cli_train_evaluate_recommend(tmp_path, capsys):
    from modalrec.cli.main import main

    out = tmp_path / "run"
    assert (
        main(["train", "vbpr", "--data", "synthetic:tiny", "--out", str(out), "--no-progress", "train.epochs=2"]) == 0
    )
    for f in ("config.yaml", "metrics.json", "history.jsonl", "log.txt", "checkpoint/best.pt"):
        assert (out / f).exists(), f
    saved = json.loads((out / "metrics.json").read_text())
    assert main(["evaluate", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out.split("run directory:")[-1].split("\n", 1)[1])
    assert again["test"]["recall@20"] == pytest.approx(saved["test"]["recall@20"])
    assert main(["recommend", str(out), "--users", "0,1", "--k", "3"]) == 0
    assert main(["recommend", str(out), "--users", "0,99999"]) == 2
