"""Figures (DESIGN.md §6) from finished runs, each saved with its provenance.

    results/figures/<name>.png                          t-SNE (UVAC Fig. 3), latent vs PCA (linear VAE Fig. 1)
    results/figures/gumbel_softmax.png                  Categorical UVAC Fig. 2
    results/figures/curves/<dataset>/<method>_k<K>.png  training curves, one line per seed
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import figures, provenance
from .evaluation import SPACES, space_points
from .pipeline import load_split
from .tables import run_dir


def _embeddings(path: Path) -> dict:
    with np.load(path / "embeddings.npz") as data:
        return {key: data[key] for key in data.files}


def _label_names(features_dir: Path) -> list[str]:
    return [str(x) for x in json.loads((Path(features_dir) / "summary.json").read_text())["labels"]]


def _seed0_runs(spec: dict, methods: dict, runs_root, features_root) -> list[dict]:
    """The seed-0 run of each method a figure names: its directory, space, embeddings and scores,
    and its test clips as points of that space."""
    features = Path(features_root) / spec["dataset"]
    out, test = [], None
    for method in spec["methods"]:
        run = run_dir(runs_root, spec["dataset"], method, spec["k"], 0)
        emb = _embeddings(run)
        space = SPACES[methods[method]["model"]][0]
        if space == "input" and test is None:  # read once: K-means and GMM-EM share the input space
            test = load_split(features, "test")
        out.append({"method": method, "run": run, "space": space, "emb": emb,
                    "points": space_points(space, emb, features, test),
                    "scores": json.loads((run / "scores.json").read_text())})
    return out


def _map_key(run: dict) -> tuple:
    # the input-space runs (K-means, GMM-EM) place the same test clips at the same points (the clip
    # ids are checked against the split): t-SNE is deterministic for a seed, so their map is
    # computed once and drawn with each run's colouring
    return ("input",) if run["space"] == "input" else ("run", run["method"])


def tsne_file(spec: dict, methods: dict, out: Path, *, perplexity: float, max_points: int, seed: int,
              provenance_params: dict, runs_root="results/runs", features_root="data/features") -> None:
    """UVAC Fig. 3: each method's test clips in its own space, by cluster and by true label."""
    runs = _seed0_runs(spec, methods, runs_root, features_root)
    distinct = {}
    for r in runs:
        distinct.setdefault(_map_key(r), r["points"])
    maps = {key: figures.embed_2d(points, perplexity=perplexity, seed=seed, max_points=max_points)
            for key, points in distinct.items()}
    panels = []
    for r in runs:
        points, idx = maps[_map_key(r)]
        panels.append({"method": r["method"], "space": r["space"], "points": points, "clusters": r["emb"]["cluster"][idx],
                       "labels": r["emb"]["label_id"][idx], "accuracy": r["scores"]["accuracy"]})
    features = Path(features_root) / spec["dataset"]
    fig = figures.tsne_figure(panels, _label_names(features),
                              f"t-SNE of the {spec['dataset']} test set (K = {spec['k']}, seed-0 runs)")
    provenance.save_figure(fig, out, provenance.for_runs(provenance_params, [r["run"] for r in runs], [features]))


def latent_vs_pca_file(spec: dict, methods: dict, out: Path, *, provenance_params: dict,
                       runs_root="results/runs", features_root="data/features") -> None:
    """Linear VAE Fig. 1: the latent means beside the PCA projection, K-means colours."""
    runs = _seed0_runs(spec, methods, runs_root, features_root)
    panels = [{"method": r["method"], "space": r["space"], "points": r["points"], "clusters": r["emb"]["cluster"],
               "silhouette": r["scores"]["spaces"][r["space"]]["silhouette"]} for r in runs]
    fig = figures.latent_vs_pca_figure(panels, f"{spec['dataset']}: K-means (k = {spec['k']}) in each space, seed-0 runs")
    provenance.save_figure(fig, out, provenance.for_runs(provenance_params, [r["run"] for r in runs],
                                                         [Path(features_root) / spec["dataset"]]))


def gumbel_softmax_file(spec: dict, out: Path, *, seed: int, provenance_params: dict) -> None:
    """Categorical UVAC Fig. 2: one Gumbel-Softmax draw at each temperature (no data involved)."""
    fig = figures.gumbel_softmax_figure(spec["n_classes"], spec["taus"], seed)
    record = provenance.collect(provenance_params, seeds=[seed], manifests={}, devices=[])
    provenance.save_figure(fig, out, record)


def curves_file(dataset: str, method: str, k: int, seeds: list[int], out: Path, *, provenance_params: dict,
                runs_root="results/runs", features_root="data/features") -> None:
    """Training curves of one method × dataset × K, one line per seed."""
    runs = [run_dir(runs_root, dataset, method, k, s) for s in seeds]
    histories = {f"seed {s}": pd.read_csv(run / "history.csv") for s, run in zip(seeds, runs)}
    fig = figures.training_curves_figure(histories, f"{method} on {dataset}, K = {k}", n_clusters=k)
    provenance.save_figure(fig, out, provenance.for_runs(provenance_params, runs, [Path(features_root) / dataset]))
