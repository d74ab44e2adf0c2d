"""Linear VAE + K-means against PCA + K-means (k = 5, 4 dimensions) in silhouette, as in the linear-VAE
study (GTZAN: 0.48 vs 0.30), on any mfcc_stats feature cache, and what the silhouette rewards.

Per seed: the silhouette of K-means in the VAE's latent means, in PCA's components, and in the same
components scaled to unit variance (whitened: the shape the VAE's KL to N(0, I) pulls its latent
towards); the VAE's active latent dimensions (variance of the mean over clips > 0.01, Burda et al.
2016); and, where the cache has labels, each clustering's NMI with them. Once: PCA + K-means at
1 .. latent_dim components, to show how the silhouette of K-means climbs as dimensions are
dropped, whatever the clusters hold.

    .venv/bin/uvac data synth_music   # builds data/features/synth_music
    .venv/bin/python benchmarks/linear_vae_vs_pca.py data/features/synth_music --seeds 5 [--epochs 200]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import normalized_mutual_info_score, silhouette_score

from common import OUT_DIR, write_report  # benchmarks/common.py
from uvac import params as P
from uvac.pipeline import load_split
from uvac.runs import make_estimator

REPO = Path(__file__).resolve().parents[1]
ACTIVE_VARIANCE = 0.01


def pca_kmeans(x: np.ndarray, dims: int, k: int, seed: int, whiten: bool = False) -> tuple[np.ndarray, np.ndarray]:
    z = PCA(n_components=dims, whiten=whiten, random_state=seed).fit_transform(x)
    return z, KMeans(k, n_init=10, random_state=seed).fit_predict(z)


def scores(points: np.ndarray, clusters: np.ndarray, labels: np.ndarray | None) -> dict:
    out = {"silhouette": round(float(silhouette_score(points, clusters)), 4)}
    if labels is not None:
        out["nmi_labels"] = round(float(normalized_mutual_info_score(labels, clusters)), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features_dir")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--epochs", type=int, help="train the VAE this long instead of params.yaml's 20")
    ap.add_argument("--out", help="default: results/benchmarks/linear_vae_vs_pca[_<epochs>ep].json")
    args = ap.parse_args()
    params = P.load(REPO / "params.yaml")
    method = dict(params["methods"]["linear_vae"])
    if args.epochs:
        method["epochs"] = args.epochs
    dims = method["latent_dim"]
    data = load_split(args.features_dir, "all")
    x, labels = data["x"], data["label_id"]
    labels = labels if (labels >= 0).all() else None
    rows = []
    for seed in range(args.seeds):
        est = make_estimator(method, args.k, seed, dict(params["train"], device="cpu")).fit(x)
        mu = est.transform(x)
        vae = scores(mu, est.predict(x), labels)
        vae["active_dims"] = int((mu.var(0) > ACTIVE_VARIANCE).sum())
        rows.append({"seed": seed, "linear_vae_kmeans": vae, "pca_kmeans": scores(*pca_kmeans(x, dims, args.k, seed), labels),
                     "pca_whitened_kmeans": scores(*pca_kmeans(x, dims, args.k, seed, whiten=True), labels)})
        print(json.dumps(rows[-1]))
    by_dims = {d: scores(*pca_kmeans(x, d, args.k, 0), labels) for d in range(1, dims + 1)}
    summary = {"features": args.features_dir, "n_clips": len(x), "k": args.k, "epochs": method["epochs"],
               "latent_dim": dims}
    for name in ("linear_vae_kmeans", "pca_kmeans", "pca_whitened_kmeans"):
        summary[name] = {key: {"mean": round(float(np.mean([r[name][key] for r in rows])), 4),
                               "std": round(float(np.std([r[name][key] for r in rows])), 4)}
                         for key in rows[0][name]}
    summary["pca_kmeans_by_components"] = by_dims
    print(json.dumps({k: v for k, v in summary.items() if k not in ("features", "n_clips", "k")}, indent=1))
    write_report(args.out or OUT_DIR / f"linear_vae_vs_pca{f'_{args.epochs}ep' if args.epochs else ''}.json",
                 {**summary, "rows": rows})


if __name__ == "__main__":
    main()
