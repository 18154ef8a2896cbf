"""Experiments: spec expansion, hashing, the parallel resumable runner, selection on validation, reports."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml

from modalrec.errors import ConfigError
from modalrec.experiments.runner import run_sweep
from modalrec.experiments.select import method_label, select_best, trials_frame, with_deltas
from modalrec.experiments.spec import Trial, config_hash, expand, parse_spec
from modalrec.experiments.store import Store

TINY_SPEC = {
    "name": "tiny",
    "base": {"data": {"source": "synthetic:tiny"}, "train": {"epochs": 2}},
    "axes": {"model": ["lightgcn", "freedom"], "seed": [0, 1], "train.lr": [0.001, 0.01]},
    "report": {"metric": "recall@20", "baseline": "lightgcn",
               "figures": [{"x": "train.lr", "y": "recall@10", "line": "model", "split": "test"}]},
}  # fmt: skip


def _write(tmp_path, spec: dict, name: str = "spec.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(spec))
    return p


# -- spec -------------------------------------------------------------------------------------
def test_expand_product_zip_exclude_count():
    spec = parse_spec(
        {
            "base": {"data": {"source": "synthetic:tiny"}},
            "axes": {"model": ["lightgcn", "bpr"], "seed": [0, 1, 2]},
            "zip": [{"train.lr": [0.1, 0.2], "train.batch_size": [64, 128]}],
            "exclude": [{"model": "lightgcn", "seed": 2}, {"train.batch_size": 128, "model": "bpr", "seed": 0}],
        }
    )
    trials = expand(spec)
    # 2 models x 3 seeds x 2 zipped pairs = 12; minus 2 (lightgcn, seed 2) and 1 (bpr, seed 0, batch 128)
    assert len(trials) == 12 - 2 - 1
    pairs = {(t.config["train"]["lr"], t.config["train"]["batch_size"]) for t in trials}
    assert pairs == {(0.1, 64), (0.2, 128)}  # zipped keys vary together, never crossed
    assert not any(t.model == "lightgcn" and t.seed == 2 for t in trials)
    assert len({t.hash for t in trials}) == len(trials)
    assert spec.swept_keys == ["model", "seed", "train.lr", "train.batch_size"]


def test_zip_lengths_and_unknown_keys_fail_before_running(tmp_path):
    with pytest.raises(ConfigError, match="equal length"):
        parse_spec({"zip": [{"train.lr": [0.1, 0.2], "train.batch_size": [64]}]})
    with pytest.raises(ConfigError, match="unknown spec key 'axis'"):
        parse_spec({"axis": {"seed": [0]}})
    bad = {**TINY_SPEC, "axes": {"model": ["lightgcn"], "train.lrr": [0.1]}}
    study = tmp_path / "study"
    with pytest.raises(ConfigError, match="train.lrr"):
        run_sweep(_write(tmp_path, bad), study, workers=0, progress=False)
    assert not study.exists()  # nothing ran, no store was created
    with pytest.raises(ConfigError, match="params.n_layer"):
        expand(parse_spec({**TINY_SPEC, "axes": {"model": ["lightgcn"], "params.n_layer": [1]}}))


def test_hash_stable_and_identifies_the_resolved_config():
    a = expand(parse_spec(TINY_SPEC))
    b = expand(parse_spec(json.loads(json.dumps(TINY_SPEC))))
    assert [t.hash for t in a] == [t.hash for t in b]
    t = a[0]
    reordered = dict(reversed(list(t.config.items())))
    assert config_hash(reordered) == t.hash  # key order does not matter
    assert config_hash({**t.config, "threads": 7}) == t.hash  # the worker's thread count is not identity
    assert config_hash({**t.config, "seed": t.seed + 1}) != t.hash
    # a value equal to the default resolves to the same config, hence the same hash
    same = expand(parse_spec({**TINY_SPEC, "base": {**TINY_SPEC["base"], "objective": "bpr"}}))
    assert [x.hash for x in same] == [t.hash for t in a]


# -- running, interruption, resume ------------------------------------------------------------
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """2 models x 2 seeds x 2 lrs, run with workers=2: first interrupted after 3 trials, then resumed."""
    tmp = tmp_path_factory.mktemp("exp")
    spec_path = _write(tmp, TINY_SPEC)
    study = tmp / "study"
    first = run_sweep(spec_path, study, workers=2, limit=3, progress=False)
    with Store(study) as st:
        before = {r["hash"]: r for r in st.rows()}
        # simulate a crash in the middle of a 4th trial: marked running, a half-written run directory
        crashed = next(h for h, r in before.items() if r["status"] == "pending")
        st.mark_running(crashed)
        (study / "trials" / crashed).mkdir(parents=True)
        (study / "trials" / crashed / "history.jsonl").write_text('{"epoch": 0, "loss": 99}\n' * 5)
    second = run_sweep(spec_path, study, workers=0, progress=False)  # resume (in-process, to keep the test fast)
    with Store(study) as st:
        after = {r["hash"]: r for r in st.rows()}
    return {"dir": study, "spec": spec_path, "first": first, "second": second, "before": before,
            "after": after, "crashed": crashed}  # fmt: skip


def test_sweep_interrupted_and_resumed_without_rerunning(study):
    first, second, before, after = study["first"], study["second"], study["before"], study["after"]
    assert first == {"total": 8, "skipped": 0, "ran": 3, "done": 3, "failed": 0}
    assert sorted(r["status"] for r in before.values()) == ["done"] * 3 + ["pending"] * 5
    assert second == {"total": 8, "skipped": 3, "ran": 5, "done": 5, "failed": 0}
    for h, r in before.items():
        if r["status"] == "done":  # finished trials were not rerun: same row, one attempt
            assert after[h]["attempts"] == 1 and after[h]["finished"] == r["finished"]
            assert after[h]["test"] == r["test"]
    assert all(r["status"] == "done" for r in after.values())
    crashed = after[study["crashed"]]
    assert crashed["attempts"] == 2
    history = (study["dir"] / "trials" / study["crashed"] / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in history] == [0, 1]  # the half-written attempt was discarded
    for r in after.values():
        assert r["rss_scope"] in ("trial", "process") and r["peak_rss_mb"] > 0
        assert [c["epoch"] for c in r["curve"]] == [0, 1] and "recall@20" in r["curve"][0]["valid"]
        assert r["versions"]["torch"] and r["seconds"] >= 0
        assert r["best_epoch"] == max(range(2), key=lambda e: r["curve"][e]["valid"]["recall@20"])
        assert r["valid"] == r["curve"][r["best_epoch"]]["valid"]


def test_interrupted_trial_continues_from_its_checkpoint(tmp_path):
    from modalrec.api import train
    from modalrec.experiments.runner import execute_trial

    args = {"model": "lightgcn", "data": "synthetic:tiny", "seed": 0, "overrides": {"train.epochs": 4, "threads": 1}}

    def ctrl_c(epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(**args, out=tmp_path / "t", on_epoch_end=ctrl_c)
    res = execute_trial({**args, "hash": "t", "config": {}, "out": str(tmp_path / "t")})
    assert res["status"] == "done" and [c["epoch"] for c in res["curve"]] == [0, 1, 2, 3]
    assert "resuming after epoch 1" in (tmp_path / "t" / "log.txt").read_text()
    whole = train(**args, out=tmp_path / "u")  # the same trial, never interrupted
    assert res["test"] == pytest.approx(whole.metrics["test"]) and res["best_epoch"] == whole.metrics["best_epoch"]


def test_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    spec = {
        "base": {"data": {"source": "synthetic:tiny"}, "train": {"epochs": 1}, "model": "lightgcn"},
        # recall@50 is a valid metric name but eval.topk is [10, 20]: the trial fails at run time
        "axes": {"train.valid_metric": ["recall@50", "recall@20"]},
    }
    path = _write(tmp_path, spec)
    counts = run_sweep(path, tmp_path / "s", workers=0, progress=False)
    assert counts == {"total": 2, "skipped": 0, "ran": 2, "done": 1, "failed": 1}
    with Store(tmp_path / "s") as st:
        rows = {r["swept"]["train.valid_metric"]: r for r in st.rows()}
    assert rows["recall@50"]["status"] == "failed" and "TrainingError" in rows["recall@50"]["error"]
    assert "recall@50" in rows["recall@50"]["error"] and rows["recall@50"]["test"] is None
    assert rows["recall@20"]["status"] == "done" and rows["recall@20"]["test"]["recall@20"] >= 0
    assert run_sweep(path, tmp_path / "s", workers=0, progress=False)["skipped"] == 2
    again = run_sweep(path, tmp_path / "s", workers=0, progress=False, retry_failed=True)
    assert again == {"total": 2, "skipped": 1, "ran": 1, "done": 0, "failed": 1}


# -- selection --------------------------------------------------------------------------------
def _crafted_store(path) -> Store:
    """lightgcn with lr A (valid-best, test-worse) and lr B (test-best, valid-worse); freedom with one lr."""
    st = Store(path)
    st.set_meta(name="crafted", swept_keys=["model", "seed", "train.lr"])
    cases = [  # model, lr, seed, valid recall@20, test recall@20
        ("lightgcn", 0.001, 0, 0.30, 0.10), ("lightgcn", 0.001, 1, 0.34, 0.12),
        ("lightgcn", 0.01, 0, 0.20, 0.50), ("lightgcn", 0.01, 1, 0.22, 0.52),
        ("freedom", 0.001, 0, 0.25, 0.15), ("freedom", 0.001, 1, 0.27, 0.13),
    ]  # fmt: skip
    trials = []
    for model, lr, seed, _, _ in cases:
        cfg = {"model": model, "seed": seed, "data": {"source": "synthetic:tiny"}, "train": {"lr": lr}}
        trials.append(Trial(config_hash(cfg), {"model": model, "seed": seed, "train.lr": lr}, cfg, {}))
    st.add_trials(trials)
    for tr, (_, _, _, v, t) in zip(trials, cases):
        st.record({"hash": tr.hash, "status": "done", "valid": {"recall@20": v}, "test": {"recall@20": t}})
    return st


def test_selection_uses_validation_never_test(tmp_path):
    with _crafted_store(tmp_path / "s") as st:
        df = trials_frame(st)
    best = select_best(df, "recall@20").set_index("method")
    lg = best.loc["lightgcn"]
    # valid means: lr 0.001 -> 0.32, lr 0.01 -> 0.21: the valid-best is lr 0.001 although its test is worse
    assert lg["valid.recall@20"] == pytest.approx(0.32)
    assert lg["test.recall@20"] == pytest.approx(0.11)
    assert lg["test.recall@20:std"] == pytest.approx(math.sqrt(((0.10 - 0.11) ** 2 + (0.12 - 0.11) ** 2) / 1))
    assert lg["n_seeds"] == 2
    chosen = df[df["group"] == lg["group"]]
    assert set(chosen["train.lr"]) == {0.001}
    # changing only test numbers never changes the selection
    df2 = df.assign(**{"test.recall@20": -df["test.recall@20"]})
    assert select_best(df2, "recall@20").set_index("method").loc["lightgcn", "group"] == lg["group"]
    deltas = with_deltas(best.reset_index(), "lightgcn", ["test.recall@20"]).set_index("method")
    assert deltas.loc["freedom", "test.recall@20:delta%"] == pytest.approx(100 * (0.14 - 0.11) / 0.11)
    assert deltas.loc["lightgcn", "test.recall@20:delta%"] == pytest.approx(0.0)


def test_trials_of_an_earlier_spec_are_stale(tmp_path):
    with _crafted_store(tmp_path / "s") as st:
        kept = st.rows()[:2]
        st.add_trials([Trial(r["hash"], r["swept"], r["config"], {}) for r in kept])  # a narrower spec
        assert [r["hash"] for r in st.rows()] == [r["hash"] for r in kept]
        assert len(st.rows(current_only=False)) == 6 and st.counts()["stale"] == 4
        assert st.rows("done")[0]["test"] == kept[0]["test"]  # earlier results are kept, not reset


def test_ablation_table_marks_and_selects_on_validation(tmp_path):
    from modalrec.experiments.report import ablation_keys, ablation_table
    from modalrec.experiments.spec import ReportSpec

    st = Store(tmp_path / "a")
    st.set_meta(name="abl", swept_keys=["rectify.enabled", "train.lr", "seed"])
    cases = [  # enabled, lr, seed, valid, test: with rectification on, lr 0.01 wins on validation
        (True, 0.001, 0, 0.2, 0.9), (True, 0.01, 0, 0.3, 0.4), (False, 0.001, 0, 0.1, 0.2), (False, 0.01, 0, 0.05, 0.8),
    ]  # fmt: skip
    trials = []
    for on, lr, seed, _, _ in cases:
        cfg = {
            "model": "lightgcn",
            "seed": seed,
            "data": {"source": "x"},
            "train": {"lr": lr},
            "rectify": {"enabled": on},
        }
        trials.append(Trial(config_hash(cfg), {"rectify.enabled": on, "train.lr": lr, "seed": seed}, cfg, {}))
    st.add_trials(trials)
    for tr, (*_, v, t) in zip(trials, cases):
        st.record({"hash": tr.hash, "status": "done", "valid": {"recall@20": v}, "test": {"recall@20": t}})
    df = trials_frame(st)
    st.close()
    keys = ablation_keys(df, ["rectify.enabled", "train.lr", "seed"], ReportSpec())
    assert keys == ["rectify.enabled"]  # boolean on/off axis; lr is a hyper-parameter, seed is never one
    table = ablation_table(df, keys, ["recall@20"], "recall@20")
    md = table.markdown()
    assert "| lightgcn | x | ✓ | **0.4000** |" in md and "| lightgcn | x | ✗ | 0.2000 |" in md


def test_method_label_drops_default_values():
    assert method_label({"model": "lightgcn", "objective": "bpr"}, ["model", "objective"]) == "lightgcn"
    assert method_label({"model": "lightgcn", "objective": "brmrs"}, ["model", "objective"]) == "lightgcn+brmrs"
    loss = ["loss.chns_weight", "loss.syn_weight"]
    assert method_label({"loss": {"chns_weight": 0.0, "syn_weight": 1.0}}, loss) == "syn_weight=1"
    assert method_label({"loss": {"chns_weight": 0.0, "syn_weight": 0.0}}, loss) == "base"
    assert method_label({"model": "vbpr", "rectify": {"enabled": True}}, ["model", "rectify.enabled"]) == "vbpr+rectify"


# -- results and report -----------------------------------------------------------------------
def test_results_export_formats(study, capsys):
    from modalrec.cli.main import main

    assert main(["results", str(study["dir"]), "--format", "csv"]) == 0
    from io import StringIO

    df = pd.read_csv(StringIO(capsys.readouterr().out))
    assert len(df) == 8 and set(df["status"]) == {"done"}
    for c in ("hash", "model", "seed", "train.lr", "valid.recall@20", "test.recall@20", "test.ndcg@10"):
        assert c in df
    assert set(df["hash"]) == set(study["after"])
    assert main(["results", str(study["dir"]), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = {h: r["test"]["recall@20"] for h, r in study["after"].items()}
    assert {r["hash"]: r["test.recall@20"] for r in rows} == expected
    assert main(["results", str(study["dir"]), "--format", "markdown"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| hash | status |") and len(md) == 2 + 8
    assert main(["results", str(study["dir"])]) == 0


def test_report_writes_tables_and_figures(study):
    from modalrec.cli.main import main

    assert main(["report", str(study["dir"])]) == 0
    rep = study["dir"] / "report"
    md = (rep / "report.md").read_text()
    assert "Table 1" in md and "R@20" in md and "**" in md and "Δ%" in md
    assert "<table>" in (rep / "report.html").read_text()
    figs = {p.name for p in (rep / "figures").iterdir()}
    for stem in ("recall_10_vs_train.lr_by_method_test", "training_curves_synthetic_tiny"):
        assert {f"{stem}.png", f"{stem}.svg"} <= figs
        assert (rep / "figures" / f"{stem}.png").stat().st_size > 5000
    # Table 1's bold R@20 is the method with the larger test mean of its valid-selected config
    with Store(study["dir"]) as st:
        best = select_best(trials_frame(st), "recall@20").set_index("method")["test.recall@20"]
    top_row = next(line for line in md.splitlines() if line.startswith(f"| {best.idxmax()} |"))
    assert f"**{best.max():.4f}" in top_row


@pytest.mark.slow
def test_ray_backend_runs_the_same_trials(study, tmp_path):
    pytest.importorskip("ray")
    counts = run_sweep(study["spec"], tmp_path / "ray", workers=2, backend="ray", limit=2, progress=False)
    assert counts["done"] == 2 and counts["failed"] == 0
    with Store(tmp_path / "ray") as st:
        ray_rows = st.rows("done")
    for r in ray_rows:  # same hash, same numbers as the local pool (same config and seed on CPU)
        assert r["test"] == pytest.approx(study["after"][r["hash"]]["test"])


def test_progress_counts_and_eta():
    from modalrec.experiments.progress import SweepProgress

    p = SweepProgress(8, skipped=3, workers=2, enabled=False)
    assert p.eta() is None
    p.start("a")
    p.finish("a", "done", seconds=2.0)
    p.start("b")
    p.finish("b", "failed", seconds=4.0)
    p.start("c")
    assert (p.done, p.failed, len(p.running), p.remaining) == (1, 1, 1, 3)
    assert p.eta() == pytest.approx(3 * 3.0 / 2)  # remaining x mean trial time / workers
    assert "1 running" in p.line() and "1 failed" in p.line()


def test_tables_use_the_clean_condition_of_stress_axes():
    from modalrec.experiments.report import ablation_keys, clean_rows
    from modalrec.experiments.spec import ReportSpec

    df = pd.DataFrame({"stress.edges": [0.0, 0.3, None, -0.2], "train.lr": [0.1, 0.1, 0.0, 0.2]})
    clean, note = clean_rows(df, ["stress.edges", "train.lr"])
    assert clean.index.tolist() == [0, 2] and "stress.edges" in note
    assert clean_rows(df, ["train.lr"])[0] is df  # no condition axis: every trial
    # a corruption ratio is a condition, not an ablation switch; a 0/non-0 hyper-parameter is one
    assert ablation_keys(df, ["stress.edges", "train.lr"], ReportSpec()) == ["train.lr"]
