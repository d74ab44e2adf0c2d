"""uvac.figures: t-SNE embedding, Gumbel-Softmax samples, and that every figure has the panels, titles and
non-overlapping text it promises and renders to PNG."""
from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from threadpoolctl import threadpool_limits

from uvac import figures as F

N, D, K = 120, 64, 4


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """t-SNE's OpenMP gradient on 60 points is several times slower with 2 threads on a shared 2-core box
    (and gives the same result), so keep these tests on one thread."""
    import sklearn.manifold  # noqa: F401  (threadpoolctl only limits libraries already loaded)
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def blobs():
    """N points in D dims from K well separated blobs, with integer labels."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(K), N // K)
    centers = rng.normal(size=(K, D)) * 5
    return centers[labels] + rng.normal(size=(N, D)), labels


def main_axes(fig: Figure) -> list:
    """The plotting axes, without colorbar axes (legends are not axes)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def renderer(fig: Figure):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def assert_png(fig: Figure) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def assert_titles_apart(fig: Figure) -> None:
    """No two subplot titles overlap, and none overlaps the suptitle."""
    r = renderer(fig)
    boxes = [ax.title.get_window_extent(r) for ax in main_axes(fig) if ax.get_title()]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), f"subplot titles overlap: {a} vs {b}"
    if fig._suptitle is not None:
        sup = fig._suptitle.get_window_extent(r)
        assert all(not sup.overlaps(b) for b in boxes), "suptitle overlaps a subplot title"


def assert_legends_clear(fig: Figure) -> None:
    """Every axes legend lies outside every plotting area and clear of every x axis's labels."""
    r = renderer(fig)
    axes = main_axes(fig)
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    assert legends
    for leg in legends:
        box = leg.get_window_extent(r)
        for ax in axes:
            assert not box.overlaps(ax.get_window_extent(r)), "a legend covers points"
            assert not box.overlaps(ax.xaxis.get_tightbbox(r)), "a legend covers an x axis label"


# --------------------------------------------------------------------------------------------- embed_2d

def test_embed_2d_deterministic_and_seed_dependent(blobs):
    x, _ = blobs  # D = 64 > 50: also goes through the PCA(50) step
    a, ia = F.embed_2d(x, perplexity=15, seed=3, max_points=60)
    b, ib = F.embed_2d(x, perplexity=15, seed=3, max_points=60)
    c, ic = F.embed_2d(x, perplexity=15, seed=4, max_points=60)
    assert a.shape == (60, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(ia, ic)          # another seed draws another subset ...
    assert a.shape != c.shape or not np.allclose(a, c)  # ... and so another map


def test_embed_2d_separates_blobs(blobs):
    """The map keeps the blobs apart: each point's nearest neighbour in 2-d has its label."""
    x, labels = blobs
    pts, idx = F.embed_2d(x, perplexity=10, seed=0, max_points=60)
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    assert (labels[idx][dist.argmin(1)] == labels[idx]).mean() > 0.95


def test_embed_2d_subsample_exact_sorted_unique():
    x = np.random.default_rng(1).normal(size=(N, 2))  # D <= 2: no t-SNE, rows come back as they are
    pts, idx = F.embed_2d(x, perplexity=30, seed=5, max_points=60)
    assert len(idx) == 60 and len(np.unique(idx)) == 60
    assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < N
    np.testing.assert_allclose(pts, x[idx].astype(np.float32))
    _, idx_again = F.embed_2d(x, perplexity=30, seed=5, max_points=60)
    np.testing.assert_array_equal(idx, idx_again)


def test_embed_2d_no_subsample_when_small_and_pads_one_column():
    x = np.arange(10.0)[:, None]
    pts, idx = F.embed_2d(x, perplexity=5, seed=0, max_points=60)
    np.testing.assert_array_equal(idx, np.arange(10))
    assert pts.shape == (10, 2)
    np.testing.assert_array_equal(pts[:, 0], np.arange(10.0))
    np.testing.assert_array_equal(pts[:, 1], 0)


def test_embed_2d_clamps_perplexity_below_n():
    """perplexity 30 with N = 10 would make scikit-learn raise; it is clamped to N - 1."""
    x = np.random.default_rng(2).normal(size=(10, 5))
    pts, idx = F.embed_2d(x, perplexity=30, seed=0, max_points=60)
    assert pts.shape == (10, 2) and np.isfinite(pts).all()
    np.testing.assert_array_equal(idx, np.arange(10))


@pytest.mark.parametrize("kwargs", [dict(perplexity=0, seed=0, max_points=10),
                                    dict(perplexity=5, seed=0, max_points=0)])
def test_embed_2d_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        F.embed_2d(np.ones((5, 3)), **kwargs)


def test_embed_2d_rejects_nan():
    x = np.ones((5, 3))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        F.embed_2d(x, perplexity=2, seed=0, max_points=10)


# --------------------------------------------------------------------------------------------- Gumbel-Softmax

TAUS = [0.01, 0.5, 1, 100]


def test_gumbel_softmax_samples_properties():
    y = F.gumbel_softmax_samples(10, TAUS, seed=0)
    assert y.shape == (4, 10)
    assert np.isfinite(y).all() and (y >= 0).all()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-12)
    log_pi, g = F.gumbel_softmax_inputs(10, seed=0)
    np.testing.assert_allclose(np.exp(log_pi).sum(), 1.0)  # π is a distribution
    winner = int(np.argmax(log_pi + g))
    assert y[0, winner] > 0.999                       # τ = 0.01: one-hot at argmax(log π + g)
    np.testing.assert_allclose(y[3], 0.1, atol=0.02)  # τ = 100: close to uniform
    # entropy grows with τ
    entropy = -(y * np.log(np.clip(y, 1e-300, None))).sum(axis=1)
    assert np.all(np.diff(entropy) > 0)


def test_gumbel_softmax_samples_seeded():
    np.testing.assert_array_equal(F.gumbel_softmax_samples(10, TAUS, 7), F.gumbel_softmax_samples(10, TAUS, 7))
    assert not np.allclose(F.gumbel_softmax_samples(10, TAUS, 7), F.gumbel_softmax_samples(10, TAUS, 8))


def test_gumbel_softmax_rejects_nonpositive_tau():
    with pytest.raises(ValueError):
        F.gumbel_softmax_samples(10, [1.0, 0.0], 0)


def test_gumbel_softmax_figure():
    fig = F.gumbel_softmax_figure(10, TAUS, seed=0)
    axes = main_axes(fig)
    assert isinstance(fig, Figure) and len(axes) == 4
    assert [ax.get_title() for ax in axes] == ["τ = 0.01", "τ = 0.5", "τ = 1", "τ = 100"]
    y = F.gumbel_softmax_samples(10, TAUS, seed=0)
    for ax, row in zip(axes, y):  # the bars are the samples, at classes 1..K
        heights = [p.get_height() for p in ax.patches]
        np.testing.assert_allclose(heights, row)
        np.testing.assert_allclose([p.get_x() + p.get_width() / 2 for p in ax.patches], np.arange(1, 11))
        assert ax.get_xlabel() == "class k"
    assert axes[0].get_ylabel() == "y_k"
    assert_titles_apart(fig)
    assert_png(fig)


# --------------------------------------------------------------------------------------------- t-SNE figure

def tsne_panels(n=N, n_clusters=K):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, K, n)
    labels[:5] = -1
    return [{"method": m, "space": s, "points": rng.normal(size=(n, 2)), "clusters": rng.integers(0, n_clusters, n),
             "labels": labels, "accuracy": acc}
            for m, s, acc in (("kmeans", "input", 0.8771), ("gmm_em", "input", None), ("uvac", "latent", 0.5))]


def test_tsne_figure_layout_and_titles():
    names = [f"digit {i}" for i in range(K)]
    fig = F.tsne_figure(tsne_panels(), names, "AudioMNIST test set")
    axes = main_axes(fig)
    assert len(axes) == 6
    titles = [ax.get_title() for ax in axes]
    assert titles[0] == "kmeans (space: input) — by cluster (accuracy 87.7%)"
    assert titles[1] == "kmeans (space: input) — by true label"
    assert titles[2] == "gmm_em (space: input) — by cluster"  # accuracy None: no percentage
    assert titles[4].startswith("uvac (space: latent) — by cluster") and "50.0%" in titles[4]
    assert all(ax.get_xlabel() == "t-SNE 1" and ax.get_ylabel() == "t-SNE 2" for ax in axes)
    assert fig._suptitle.get_text() == "AudioMNIST test set"
    # the true-label legend names the labels, and unlabelled clips are grey
    texts = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert texts == ["unlabelled"] + names
    greys = axes[1].collections[0]
    assert len(greys.get_offsets()) == 5
    assert_titles_apart(fig)
    assert_legends_clear(fig)
    assert_png(fig)


def test_tsne_figure_many_clusters_uses_colorbar():
    panels = tsne_panels(n_clusters=30)[:1]
    panels[0]["clusters"][0] = 29
    fig = F.tsne_figure(panels, [str(i) for i in range(K)], "many clusters")
    assert len(main_axes(fig)) == 2
    assert len(fig.axes) == 3                 # one colorbar, for the 30 clusters
    assert main_axes(fig)[0].get_legend() is None
    assert_png(fig)


def test_tsne_figure_rejects_misaligned_panel():
    panels = tsne_panels()[:1]
    panels[0]["labels"] = panels[0]["labels"][:-1]
    with pytest.raises(ValueError, match="align"):
        F.tsne_figure(panels, ["a"], "bad")


# --------------------------------------------------------------------------------------------- latent vs PCA

def test_latent_vs_pca_figure():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(N, 8)) * np.array([5, 3, 1, 1, 1, 1, 1, 1])
    clusters = rng.integers(0, 5, N)
    panels = [{"method": "linear_vae+kmeans", "space": "latent", "points": z, "clusters": clusters, "silhouette": 0.31234},
              {"method": "pca+kmeans", "space": "pca", "points": z[:, :2], "clusters": clusters, "silhouette": None}]
    fig = F.latent_vs_pca_figure(panels, "Linear VAE vs PCA")
    axes = main_axes(fig)
    assert len(axes) == 2
    assert axes[0].get_title() == "linear_vae+kmeans (space: latent), silhouette 0.312"
    assert axes[1].get_title().startswith("pca+kmeans (space: pca)")
    assert "principal axis 1 of latent" in axes[0].get_xlabel() and "principal axis 2 of latent" in axes[0].get_ylabel()
    assert (axes[1].get_xlabel(), axes[1].get_ylabel()) == ("pca 1", "pca 2")
    # d == 2: the points are shown as they are; d > 2: their first two principal axes (spread 5 on axis 1)
    np.testing.assert_allclose(axes[1].collections[1].get_offsets(), z[:, :2])
    shown = np.asarray(axes[0].collections[1].get_offsets())
    assert shown.std(axis=0)[0] > shown.std(axis=0)[1] > 1.5
    assert_titles_apart(fig)
    assert_legends_clear(fig)
    assert_png(fig)


# --------------------------------------------------------------------------------------------- training curves

def history(kind: str, epochs: int = 6, pretrain: int = 0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"phase": "pretrain", "epoch": e, "loss": 30.0 / e, "recon": 30.0 / e, "lr": 1e-3}
            for e in range(1, pretrain + 1)]
    for e in range(1, epochs + 1):
        row = {"phase": "train", "epoch": e, "loss": 20.0 / e + rng.random(), "recon": 15.0 / e, "lr": 1e-3,
               "tau": None, "clusters_used": None, "usage_entropy": None, "mean_entropy": None}
        if kind in ("linear_vae", "uvac"):
            row["kl"] = 2.0 + 1 / e
        else:
            row.update(kl_z=2.0 + 1 / e, kl_y=0.5 / e, tau=1.0 / e)
        if kind != "linear_vae":
            row.update(clusters_used=min(K, 1 + e), usage_entropy=1.0 + 0.05 * e, mean_entropy=1.0 / e)
        rows.append(row)
    return pd.DataFrame(rows)


def test_training_curves_linear_vae_skips_cluster_panels():
    """linear_vae histories have no cluster statistics (None/NaN columns): only the loss and KL panels."""
    hist = history("linear_vae")
    assert hist["clusters_used"].isna().all()
    fig = F.training_curves_figure({"seed 0": hist, "seed 1": history("linear_vae", seed=1)}, "linear_vae",
                                   n_clusters=5)
    axes = main_axes(fig)
    assert len(axes) == 2
    assert "loss" in axes[0].get_title() and "KL" in axes[1].get_title()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["seed 0", "seed 1"]
    assert axes[0].get_yscale() == "log"            # all losses positive
    assert axes[0].get_xlabel() == "epoch"          # no pre-training
    assert_titles_apart(fig)
    assert_png(fig)


def test_training_curves_cat_uvac_all_panels():
    fig = F.training_curves_figure({"seed 0": history("cat_uvac")}, "cat_uvac", n_clusters=K)
    axes = main_axes(fig)
    assert len(axes) == 4
    kl_legend = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert kl_legend == ["kl_z", "kl_y"]
    assert len(axes[1].get_lines()) == 2
    assert any("clusters in use" in ax.get_title() for ax in axes)
    entropy_ax = axes[3]
    hlines = [ln for ln in entropy_ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(hlines) == 1 and np.allclose(hlines[0].get_ydata(), np.log(K))
    assert_titles_apart(fig)
    assert_png(fig)


def test_training_curves_pretraining_before_training_epochs():
    fig = F.training_curves_figure({"seed 0": history("uvac", pretrain=3)}, "uvac")
    ax = main_axes(fig)[0]
    assert "pre-training" in ax.get_xlabel()
    dotted = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert len(dotted) == 1
    np.testing.assert_array_equal(dotted[0].get_xdata(), [-2, -1, 0])  # before training epoch 1
    assert "pre-training recon" in [t.get_text() for t in ax.get_legend().get_texts()]
    curves = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]  # not the axvline between phases
    assert len(curves) == 3 and min(min(ln.get_xdata()) for ln in curves if ln.get_linestyle() != ":") == 1
    assert_png(fig)


def test_training_curves_negative_loss_stays_linear():
    hist = history("linear_vae")
    hist["loss"] -= 100.0
    fig = F.training_curves_figure({"seed 0": hist}, "negative ELBO loss")
    assert main_axes(fig)[0].get_yscale() == "linear"
    assert_png(fig)
