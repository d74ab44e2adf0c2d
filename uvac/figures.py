"""Figures for the report (DESIGN.md §6): arrays in, a matplotlib Figure out.

Pure functions on purpose: no file I/O, no pyplot state, no Snakemake, so the rules that call them
decide where figures go and the tests can render them headless. Figures are built on
``matplotlib.figure.Figure`` with the Agg canvas, which never opens a window.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import ScaledTranslation

if TYPE_CHECKING:
    import pandas as pd

UNLABELLED_COLOUR = "0.55"       # grey crosses for label -1 (tab10/tab20 have greys too, hence the marker)
MAX_LEGEND_CLASSES = 20          # beyond this a categorical legend is unreadable: colorbar instead


# --------------------------------------------------------------------------------------------- helpers

def _figure(width: float, height: float) -> Figure:
    """A Figure with constrained layout (no overlapping text) and an Agg canvas (headless rendering)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _marker_size(n: int) -> float:
    """Scatter marker area shrinking with the point count, so thousands of points stay separable."""
    return float(np.clip(3000.0 / max(n, 1), 2.0, 30.0))


def _class_colours(values: np.ndarray, n_classes: int):
    """Colours for integer class ids 0..n_classes-1: tab10/tab20 (colour-blind-friendlier categorical
    palettes) up to 20 classes, else viridis; ids < 0 (unlabelled) are grey.

    Returns (colours (n, 4), colormap or None, norm or None): the colormap/norm only for the
    continuous fallback, where the caller draws a colorbar instead of a legend.
    """
    values = np.asarray(values, dtype=int)
    colours = np.empty((len(values), 4))
    colours[:] = (0.55, 0.55, 0.55, 1.0)
    known = values >= 0
    if n_classes <= MAX_LEGEND_CLASSES:
        cmap = colormaps["tab10" if n_classes <= 10 else "tab20"]
        colours[known] = cmap(values[known] % cmap.N)
        return colours, None, None
    cmap, norm = colormaps["viridis"], Normalize(0, max(n_classes - 1, 1))
    colours[known] = cmap(norm(values[known]))
    return colours, cmap, norm


def _scatter_classes(fig: Figure, ax, points: np.ndarray, values: np.ndarray, names: list[str] | None,
                     legend_title: str, legend_loc: str = "right") -> None:
    """Scatter points coloured by an integer class; legend (or colorbar for > 20 classes) outside the axes."""
    values = np.asarray(values, dtype=int)
    present = np.unique(values)
    n_classes = max(int(values.max()) + 1 if len(values) else 0, len(names) if names else 0)
    colours, cmap, norm = _class_colours(values, n_classes)
    s = _marker_size(len(points))
    grey = values < 0
    # unlabelled first, so labelled points are drawn on top of them
    # a cross as well as grey: tab10/tab20 have grey classes of their own
    ax.scatter(points[grey, 0], points[grey, 1], c=UNLABELLED_COLOUR, s=s, marker="x", linewidths=0.7, alpha=0.7)
    ax.scatter(points[~grey, 0], points[~grey, 1], c=colours[~grey], s=s, linewidths=0, alpha=0.85)

    if cmap is not None:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=legend_title, shrink=0.9)
        return
    handles = []
    for v in present:
        if v < 0:
            handles.append(Line2D([], [], ls="", marker="x", ms=5, mew=1.2, color=UNLABELLED_COLOUR,
                                  label="unlabelled"))
            continue
        label = names[v] if names is not None and v < len(names) else str(v)
        colour = _class_colours(np.array([v]), n_classes)[0][0]
        handles.append(Line2D([], [], ls="", marker="o", ms=5, mfc=colour, mec="none", label=label))
    if legend_loc == "right":
        ax.legend(handles=handles, title=legend_title, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize="small", title_fontsize="small", frameon=False,
                  ncols=1 if len(handles) <= 12 else 2, handletextpad=0.2, columnspacing=0.8)
    else:  # below the axes, for side-by-side panels
        # anchored a fixed 0.55 in below the axes (below tick labels and x label) whatever the axes height
        below = ax.transAxes + ScaledTranslation(0, -0.55, fig.dpi_scale_trans)
        ax.legend(handles=handles, title=legend_title, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                  bbox_transform=below, fontsize="small", title_fontsize="small", frameon=False, ncols=min(len(handles), 5),
                  handletextpad=0.2, columnspacing=0.8)


def _as_2d(points) -> np.ndarray:
    points = np.asarray(points, dtype=float)
    if points.ndim != 2:
        raise ValueError(f"points must be a 2-d array (n, d), got shape {points.shape}")
    return points


# --------------------------------------------------------------------------------------------- t-SNE

def subset_indices(n: int, *, seed: int, max_points: int) -> np.ndarray:
    """The rows embed_2d embeds: all n, or a seeded sorted sample of max_points of them."""
    if n > max_points:
        return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    return np.arange(n)


def embed_2d(x: np.ndarray, *, perplexity: float, seed: int, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """2-d t-SNE of the rows of x (N, D), reproducible for a seed, for the cluster scatter plots.

    - N > max_points: a seeded random subset of max_points rows (np.random.default_rng(seed), indices
      sorted) is embedded, because exact-ish t-SNE cost grows with N and a plot of thousands of points
      says no more.
    - D > 50: first reduced with PCA(min(50, n)) (random_state=seed), the usual t-SNE preprocessing.
    - D <= 2: nothing to embed; the rows are returned as they are, zero-padded to 2 columns.
    - perplexity is clamped to n - 1, because scikit-learn requires perplexity < n_samples; a tiny
      subset would otherwise raise.
    - a single row is placed at the origin (t-SNE needs two).

    t-SNE itself uses init="pca" and random_state=seed, so the same seed gives the same picture; note
    that with init="pca" the seed mostly matters through the subset and the PCA step.

    Returns (points (n, 2) float32, indices (n,) of the rows of x used, ascending).
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"x must be (N, D), got shape {x.shape}")
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if perplexity <= 0:
        raise ValueError(f"perplexity must be > 0, got {perplexity}")
    n, d = x.shape
    if n == 0:
        raise ValueError("x has no rows to embed")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values; t-SNE cannot embed them")

    idx = subset_indices(n, seed=seed, max_points=max_points)
    sub = x[idx].astype(float)  # float64 after the subset: a (30000, 12672) input is not copied whole

    if d <= 2:
        out = np.zeros((len(idx), 2), dtype=np.float32)
        out[:, :d] = sub
        return out, idx
    if len(idx) == 1:
        return np.zeros((1, 2), dtype=np.float32), idx

    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if d > 50:
        sub = PCA(min(50, len(idx)), random_state=seed).fit_transform(sub)
    perp = float(min(perplexity, len(idx) - 1))
    emb = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(sub)
    return emb.astype(np.float32), idx


def _panel_name(panel: dict) -> str:
    return f"{panel['method']} (space: {panel['space']})"


def tsne_figure(panels: list[dict], label_names: list[str], title: str) -> Figure:
    """UVAC paper Fig. 3: t-SNE maps, one row per method, coloured by cluster (left) and by true label (right),
    so a reader sees at a glance whether clusters follow the labels.

    panel: {"method", "space", "points" (n, 2), "clusters" (n,) int, "labels" (n,) int (-1 = unlabelled,
    grey), "accuracy" float | None (fraction; shown in %)}.
    """
    if not panels:
        raise ValueError("tsne_figure needs at least one panel")
    fig = _figure(12.0, 4.2 * len(panels) + 0.5)
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for row, panel in zip(axes, panels):
        points = _as_2d(panel["points"])
        clusters = np.asarray(panel["clusters"], dtype=int)
        labels = np.asarray(panel["labels"], dtype=int)
        if not (len(points) == len(clusters) == len(labels)) or points.shape[1] != 2:
            raise ValueError(f"{_panel_name(panel)}: points (n, 2), clusters and labels must align; got "
                             f"{points.shape}, {clusters.shape}, {labels.shape}")
        acc = panel.get("accuracy")
        suffix = f" (accuracy {100 * acc:.1f}%)" if acc is not None else ""
        _scatter_classes(fig, row[0], points, clusters, None, "cluster")
        row[0].set_title(f"{_panel_name(panel)} — by cluster{suffix}", fontsize="medium")
        _scatter_classes(fig, row[1], points, labels, list(label_names), "true label")
        row[1].set_title(f"{_panel_name(panel)} — by true label", fontsize="medium")
        for ax in row:
            ax.set_xlabel("t-SNE 1")
            ax.set_ylabel("t-SNE 2")
            ax.set_xticks([])  # t-SNE coordinates carry no meaning; only neighbourhoods do
            ax.set_yticks([])
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------- Gumbel-Softmax

def gumbel_softmax_inputs(n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed (log π, g) behind the Gumbel-Softmax figure: log π = log_softmax(1.5·N(0, 1)) and a
    standard Gumbel draw g, both from np.random.default_rng(seed), so every τ shares the same π and noise."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=n_classes) * 1.5
    log_pi = logits - logits.max()
    log_pi = log_pi - np.log(np.exp(log_pi).sum())
    g = rng.gumbel(size=n_classes)
    return log_pi, g


def gumbel_softmax_samples(n_classes: int, taus: list[float], seed: int) -> np.ndarray:
    """y_k = softmax((log π_k + g_k)/τ) for each τ (rows), one fixed π and Gumbel draw g (columns k).

    Small τ approaches the one-hot argmax(log π + g) (a categorical sample); large τ approaches uniform.
    Computed with the max subtracted before exp, so τ = 0.01 does not overflow.
    """
    taus = np.asarray(taus, dtype=float)
    if taus.ndim != 1 or np.any(~np.isfinite(taus)) or np.any(taus <= 0):
        raise ValueError(f"taus must be a list of positive finite numbers, got {taus.tolist()}")
    log_pi, g = gumbel_softmax_inputs(n_classes, seed)
    a = (log_pi + g)[None, :] / taus[:, None]
    a = a - a.max(axis=1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=1, keepdims=True)


def gumbel_softmax_figure(n_classes: int, taus: list[float], seed: int) -> Figure:
    """Categorical UVAC paper Fig. 2: the same Gumbel-Softmax sample at several temperatures, to show how
    τ moves it from a near one-hot categorical draw (small τ) to a near uniform vector (large τ)."""
    y = gumbel_softmax_samples(n_classes, taus, seed)
    k = np.arange(1, n_classes + 1)
    fig = _figure(max(3.0 * len(taus), 4.0) + 0.5, 3.4)
    axes = fig.subplots(1, len(taus), sharey=True, squeeze=False)[0]
    for i, (ax, tau) in enumerate(zip(axes, taus)):
        ax.bar(k, y[i], color="tab:blue", width=0.8)
        ax.set_title(f"τ = {tau:g}")
        ax.set_xlabel("class k")
        ax.set_xticks(k if n_classes <= 12 else np.unique(np.linspace(1, n_classes, 6).round().astype(int)))
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("y_k")
    fig.suptitle(f"Gumbel-Softmax sample y = softmax((log π + g)/τ), K = {n_classes}, "
                 f"one fixed π and Gumbel noise g (seed {seed})")
    return fig


# --------------------------------------------------------------------------------------------- latent vs PCA

def latent_vs_pca_figure(panels: list[dict], title: str) -> Figure:
    """Linear-VAE paper Fig. 1: each representation's 2-d view coloured by its K-means clusters, side by side,
    so the latent space and the PCA space can be compared by eye next to their silhouettes.

    panel: {"method", "space", "points" (n, d), "clusters" (n,) int, "silhouette" float | None}.
    For d > 2 the first two principal axes of the points (PCA(2)) are shown; for d == 2 the points as they are.
    """
    if not panels:
        raise ValueError("latent_vs_pca_figure needs at least one panel")
    fig = _figure(5.0 * len(panels) + 0.5, 5.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        points = _as_2d(panel["points"])
        clusters = np.asarray(panel["clusters"], dtype=int)
        if len(points) != len(clusters):
            raise ValueError(f"{_panel_name(panel)}: {len(points)} points but {len(clusters)} cluster ids")
        n, d = points.shape
        if d > 2:
            from sklearn.decomposition import PCA
            shown = PCA(2).fit_transform(points)
            space = panel["space"]
            xlabel, ylabel = f"principal axis 1 of {space} (d = {d})", f"principal axis 2 of {space} (d = {d})"
        else:
            shown = np.zeros((n, 2))
            shown[:, :d] = points
            xlabel, ylabel = f"{panel['space']} 1", f"{panel['space']} 2"
        _scatter_classes(fig, ax, shown, clusters, None, "K-means cluster", legend_loc="below")
        s = panel.get("silhouette")
        ax.set_title(f"{_panel_name(panel)}, silhouette {s:.3f}" if s is not None
                     else f"{_panel_name(panel)}, silhouette n/a", fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------- training curves

def _column(df: "pd.DataFrame", name: str) -> np.ndarray:
    """A history column as float, NaN where missing or None (linear_vae has no cluster statistics)."""
    import pandas as pd
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)


def _has_values(histories: dict, name: str, phase: str = "train") -> bool:
    return any(np.isfinite(_column(_phase(df, phase), name)).any() for df in histories.values())


def _phase(df: "pd.DataFrame", phase: str) -> "pd.DataFrame":
    if "phase" not in df.columns:  # a history without phases is all training
        return df if phase == "train" else df.iloc[:0]
    return df[df["phase"].astype(str) == phase]


def _maybe_log(ax, values: list[np.ndarray], min_span: float = 1.0) -> None:
    """Log y when every plotted value is positive (a Gaussian log-likelihood loss can go negative) and the
    values span more than min_span (max/min), so that a flat curve is not squashed onto one log tick."""
    vals = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    if len(vals) and vals.min() > 0 and vals.max() / vals.min() >= min_span:
        ax.set_yscale("log")


def training_curves_figure(histories: dict[str, "pd.DataFrame"], title: str, *,
                           n_clusters: int | None = None) -> Figure:
    """Per-epoch training curves of one or more runs (legend: the dict keys), to check convergence, the KL
    terms and whether the model collapsed onto few clusters.

    Panels, each only when some run has values for it (a linear_vae history has no cluster columns):
    loss and reconstruction (plus pre-training reconstruction, dotted, at epochs <= 0: pre-training epoch e of
    P is drawn at e - P); each KL term present (kl, kl_z, kl_y); clusters in use (dashed line at K);
    usage entropy and mean per-clip entropy (dashed line at log K when n_clusters is given).
    """
    if not histories:
        raise ValueError("training_curves_figure needs at least one history")
    run_colours = colormaps["tab10" if len(histories) <= 10 else "tab20"]
    colours = {name: run_colours(i % run_colours.N) for i, name in enumerate(histories)}
    if len(histories) > 20:
        cmap = colormaps["viridis"]
        colours = {name: cmap(i / (len(histories) - 1)) for i, name in enumerate(histories)}

    has_pretrain = any(len(_phase(df, "pretrain")) for df in histories.values())
    kl_terms = [c for c in ("kl", "kl_z", "kl_y") if _has_values(histories, c)]
    panels = []
    if _has_values(histories, "loss") or _has_values(histories, "recon") or has_pretrain:
        panels.append("loss")
    if kl_terms:
        panels.append("kl")
    if _has_values(histories, "clusters_used"):
        panels.append("clusters")
    if _has_values(histories, "usage_entropy") or _has_values(histories, "mean_entropy"):
        panels.append("entropy")
    if not panels:
        raise ValueError("no history has any loss, KL or cluster values to plot")

    ncols = 2 if len(panels) == 4 else len(panels)
    nrows = 2 if len(panels) == 4 else 1
    fig = _figure(5.2 * ncols + 1.6, 3.8 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    epoch_label = "epoch (pre-training at epochs ≤ 0)" if has_pretrain else "epoch"

    def styles_legend(ax, items):
        handles = [Line2D([], [], color="0.2", ls=ls, label=label) for label, ls in items]
        ax.legend(handles=handles, fontsize="small", loc="best", framealpha=0.8)

    for letter, (ax, panel) in zip("abcd", zip(axes, panels)):
        ax.set_xlabel(epoch_label)
        ax.grid(alpha=0.3)
        plotted = []
        if panel == "loss":
            items = [("loss", "-"), ("reconstruction", "--")]
            for name, df in histories.items():
                tr, pre = _phase(df, "train"), _phase(df, "pretrain")
                ep = _column(tr, "epoch")
                for col, ls in (("loss", "-"), ("recon", "--")):
                    y = _column(tr, col)
                    ax.plot(ep, y, ls=ls, color=colours[name], lw=1.4)
                    plotted.append(y)
                if len(pre):
                    pep = _column(pre, "epoch")
                    y = _column(pre, "recon")
                    ax.plot(pep - np.nanmax(pep), y, ls=":", color=colours[name], lw=1.6)
                    plotted.append(y)
            if has_pretrain:
                items.append(("pre-training recon", ":"))
                ax.axvline(0.5, color="0.5", lw=0.8)
            _maybe_log(ax, plotted)
            ax.set_ylabel("per-clip loss")
            ax.set_title(f"({letter}) loss and reconstruction")
            styles_legend(ax, items)
        elif panel == "kl":
            term_styles = dict(zip(kl_terms, ["-", "--", "-."]))
            for name, df in histories.items():
                tr = _phase(df, "train")
                for term in kl_terms:
                    y = _column(tr, term)
                    ax.plot(_column(tr, "epoch"), y, ls=term_styles[term], color=colours[name], lw=1.4)
                    plotted.append(y)
            _maybe_log(ax, plotted, min_span=10.0)  # several KL terms of different size: log only if needed
            ax.set_ylabel("KL (nats per clip)")
            ax.set_title(f"({letter}) KL term{'s' if len(kl_terms) > 1 else ''}")
            styles_legend(ax, [(t, term_styles[t]) for t in kl_terms])
        elif panel == "clusters":
            for name, df in histories.items():
                tr = _phase(df, "train")
                ax.plot(_column(tr, "epoch"), _column(tr, "clusters_used"), color=colours[name], lw=1.4,
                        drawstyle="steps-mid")
            if n_clusters is not None:
                ax.axhline(n_clusters, color="0.4", ls="--", lw=1)
                ax.set_ylim(0, n_clusters + 0.8)
                styles_legend(ax, [("clusters in use", "-"), (f"K = {n_clusters}", "--")])
            else:
                ax.set_ylim(bottom=0)
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.set_ylabel("clusters in use")
            ax.set_title(f"({letter}) clusters in use (argmax of q(c|x))")
        else:
            items = [("usage entropy H(mean q)", "-"), ("mean per-clip entropy", "-.")]
            for name, df in histories.items():
                tr = _phase(df, "train")
                ep = _column(tr, "epoch")
                ax.plot(ep, _column(tr, "usage_entropy"), ls="-", color=colours[name], lw=1.4)
                ax.plot(ep, _column(tr, "mean_entropy"), ls="-.", color=colours[name], lw=1.4)
            if n_clusters is not None and n_clusters > 0:
                ax.axhline(np.log(n_clusters), color="0.4", ls="--", lw=1)
                items.append((f"log K = {np.log(n_clusters):.2f}", "--"))
            ax.set_ylim(bottom=0)
            ax.set_ylabel("entropy (nats)")
            ax.set_title(f"({letter}) cluster entropies")
            styles_legend(ax, items)
    for ax in axes[len(panels):]:
        ax.remove()

    run_handles = [Line2D([], [], color=colours[name], lw=2, label=str(name)) for name in histories]
    fig.legend(handles=run_handles, loc="outside right upper", title="run", fontsize="small",
               title_fontsize="small", frameon=False)
    fig.suptitle(title)
    return fig
