"""Baselines, metrics in named spaces, tables with the published values, and provenance."""
import json

import numpy as np
import pandas as pd
import pytest

from uvac import baselines, evaluation, metrics, provenance, tables


def blobs(n_per=20, k=3, dim=6, seed=0):
    """k well-separated Gaussian blobs and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10, size=(k, dim))
    x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(k), n_per)


def test_accuracy_is_invariant_to_cluster_renaming_and_blank_when_k_differs():
    labels = np.array([0, 0, 1, 1, 2, 2])
    scores, notes = metrics.label_scores(labels, np.array([2, 2, 0, 0, 1, 1]), k=3)
    assert scores["accuracy"] == 1.0 and scores["nmi"] == pytest.approx(1.0) and notes == []
    scores, notes = metrics.label_scores(labels, np.array([0, 0, 0, 1, 1, 1]), k=3)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    scores, notes = metrics.label_scores(labels, np.array([0, 0, 1, 1, 1, 1]), k=2)
    assert scores["accuracy"] is None and "K = 2 differs from the 3 classes" in notes[0]


def test_geometry_scores_match_sklearn_and_report_a_collapse():
    from sklearn.metrics import davies_bouldin_score, silhouette_score
    x, y = blobs()
    scores, notes = metrics.geometry_scores(x, y, space="z", silhouette_sample=None, seed=0)
    assert scores["silhouette"] == pytest.approx(silhouette_score(x, y)) and scores["silhouette"] > 0.8
    assert scores["dbi"] == pytest.approx(davies_bouldin_score(x, y)) and notes == []
    scores, notes = metrics.geometry_scores(x, np.zeros(len(x), int), space="z", silhouette_sample=None, seed=0)
    assert scores == {"silhouette": None, "dbi": None, "chi": None, "silhouette_n": None}
    assert "1 cluster(s) in use" in notes[0]


def test_silhouette_sample_is_seeded_and_stated():
    x, y = blobs(n_per=40)
    a, _ = metrics.geometry_scores(x, y, space="input", silhouette_sample=30, seed=1)
    b, _ = metrics.geometry_scores(x, y, space="input", silhouette_sample=30, seed=1)
    c, _ = metrics.geometry_scores(x, y, space="input", silhouette_sample=30, seed=2)
    assert a == b and a["silhouette_n"] == 30 and a["silhouette"] != c["silhouette"]
    # a sample holding one cluster only: silhouette undefined, DBI and CHI still there
    y2 = np.r_[np.zeros(119, int), [1]]
    s, notes = metrics.geometry_scores(x, y2, space="input", silhouette_sample=10, seed=0)
    assert s["silhouette"] is None and s["dbi"] is not None and "silhouette sample" in notes[0]


@pytest.mark.parametrize("model,space_dim", [("kmeans", 0), ("gmm_em", 0), ("pca_kmeans", 2), ("labels", 0)])
def test_baselines_recover_separated_blobs(model, space_dim):
    x, y = blobs(k=3, dim=6)
    method = {"model": model, "n_init": 3, "covariance_type": "diag", "n_components": 2}
    out = baselines.fit_predict(method, 3, 0, x, x, y)
    assert metrics.unsupervised_accuracy(y, out["cluster"]) == 1.0
    assert out["z"].shape == (len(x), space_dim)
    if model == "gmm_em":
        assert np.allclose(out["proba"].sum(1), 1, atol=1e-5)
    again = baselines.fit_predict(method, 3, 0, x, x, y)
    assert np.array_equal(out["cluster"], again["cluster"])


def test_labels_baseline_refuses_unlabelled_clips():
    x, y = blobs()
    y[0] = -1
    with pytest.raises(ValueError, match="needs every test clip labelled"):
        baselines.fit_predict({"model": "labels"}, 3, 0, x, x, y)


@pytest.fixture
def feature_cache(tmp_path):
    """A spectrogram-shaped feature cache (train = test) with three separable classes."""
    x, y = blobs(n_per=4, k=10, dim=4 * 5)
    x = (x - x.min()) / (x.max() - x.min())
    cache = tmp_path / "features" / "toy"
    cache.mkdir(parents=True)
    for split in ("train", "test"):
        np.savez(cache / f"{split}.npz", x=x.reshape(-1, 1, 4, 5), mask=np.ones((len(x), 5), np.float32),
                 clip_id=np.array([f"c{i}" for i in range(len(x))]), label_id=y)
    pd.DataFrame({"clip_id": [f"c{i}" for i in range(len(x))]}).to_parquet(cache / "manifest.parquet")
    (cache / "summary.json").write_text(json.dumps({"labels": list("abcdefghij")}))
    return cache


def run_baseline(cache, runs, method, name, k, seed):
    out = tables.run_dir(runs, "toy", name, k, seed)
    baselines.baseline_run(cache, method, k, seed, out)
    return evaluation.score_run(out, cache, model=method["model"], k=k, silhouette_sample=None, seed=0)


def test_table_aggregates_seeds_and_shows_the_published_value(feature_cache, tmp_path):
    runs = tmp_path / "runs"
    methods = {"labels": {"model": "labels"}, "kmeans": {"model": "kmeans", "n_init": 10}}
    for seed in (0, 1):
        run_baseline(feature_cache, runs, methods["kmeans"], "kmeans", 10, seed)
        run_baseline(feature_cache, runs, methods["labels"], "labels", 10, seed)
    scores = json.loads((runs / "toy/kmeans/k10/seed0/scores.json").read_text())
    assert scores["accuracy"] == 1.0 and set(scores["spaces"]) == {"input"} and not scores["collapsed"]

    spec = {"title": "T", "reference": "uvac_table1",
            "rows": [{"dataset": "toy", "paper_dataset": "audiomnist", "ks": [10], "methods": ["labels", "kmeans"], "n_seeds": 2}]}
    table = tables.build_table("table1", spec, methods, {"toy": {"type": "folder"}}, runs)
    assert list(table["method"]) == ["labels", "kmeans"]
    km = table.set_index("method").loc["kmeans"]
    assert km["accuracy_mean"] == 100.0 and km["accuracy_published"] == 18.40 and km["n_runs"] == 2
    assert km["space"] == "input" and km["silhouette_published"] == 0.13
    md = tables.to_markdown(table, spec, methods)
    assert "| toy | 10 | kmeans | input | 2 | 100.00 ± 0.00 (18.40) |" in md
    assert "(-0.040)" in md.split("| labels |")[1].splitlines()[0]  # labels' published silhouette

    # K = 5 for 10 classes: accuracy blank, the labels row left out, no published value
    spec["rows"] = [{"dataset": "toy", "paper_dataset": "audiomnist", "ks": [5], "methods": ["labels", "kmeans"], "n_seeds": 1}]
    run_baseline(feature_cache, runs, methods["labels"], "labels", 5, 0)
    run_baseline(feature_cache, runs, methods["kmeans"], "kmeans", 5, 0)
    table = tables.build_table("table1", spec, methods, {"toy": {"type": "folder"}}, runs)
    assert list(table["method"]) == ["kmeans"] and table["accuracy_mean"].isna().all()
    assert table["silhouette_published"].isna().all() and table["silhouette_mean"].notna().all()


def test_table_reports_a_missing_run_and_an_unknown_reference(feature_cache, tmp_path):
    spec = {"title": "T", "reference": None,
            "rows": [{"dataset": "toy", "paper_dataset": None, "ks": [10], "methods": ["kmeans"], "n_seeds": 1}]}
    with pytest.raises(FileNotFoundError, match="kmeans/k10/seed0/scores.json"):
        tables.build_table("mine", spec, {"kmeans": {"model": "kmeans"}}, {"toy": {"type": "folder"}}, tmp_path)
    spec["reference"] = "nope"
    with pytest.raises(ValueError, match="tables.mine.reference: 'nope'"):
        tables.build_table("mine", spec, {"kmeans": {"model": "kmeans"}}, {"toy": {"type": "folder"}}, tmp_path)


def test_published_reference_holds_the_papers_numbers():
    ref = tables.published().set_index(["reference", "paper_dataset", "k", "method"])
    assert ref.loc[("uvac_table1", "audiomnist", 10, "uvac"), "accuracy"] == 70.78
    assert ref.loc[("cat_uvac_table1", "tau2019", 5, "cat_uvac_l2"), "chi_e3"] == 14.76
    assert ref.loc[("linear_vae_table1", "gtzan", 5, "pca_kmeans"), "silhouette"] == 0.3015


def test_provenance_sidecar_png_metadata_and_cli(feature_cache, tmp_path, capsys):
    from matplotlib.figure import Figure

    from uvac import cli
    runs = tmp_path / "runs"
    run_baseline(feature_cache, runs, {"model": "kmeans", "n_init": 2}, "kmeans", 10, 4)
    record = provenance.for_runs({"method": {"model": "kmeans"}}, [runs / "toy/kmeans/k10/seed4"], [feature_cache])
    assert record["seeds"] == [4] and record["device"]["training"] == ["cpu"]
    assert record["data_manifests"]["toy"]["sha256"] == provenance.file_sha256(feature_cache / "manifest.parquet")
    assert record["packages"]["torch"] and record["params_hash"] == provenance.digest(record["params"])
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    png = tmp_path / "fig.png"
    provenance.save_figure(fig, png, record)
    assert provenance.read(png) == json.loads(json.dumps(record))
    alone = tmp_path / "alone" / "fig.png"  # the PNG copied without its sidecar still answers
    alone.parent.mkdir()
    alone.write_bytes(png.read_bytes())
    assert provenance.read(alone)["params_hash"] == record["params_hash"]
    cli.main(["provenance", str(alone)])
    out = capsys.readouterr().out
    assert record["params_hash"] in out and "seeds         [4]" in out and "model: kmeans" in out
    with pytest.raises(ValueError, match="no provenance found"):
        (tmp_path / "plain.txt").write_text("x")
        provenance.read(tmp_path / "plain.txt")
