"""Evaluation: scoring a 30 000-clip test set and drawing its t-SNE figure, against sklearn, same run.

Builds (untimed) a feature cache whose test split has the full AudioMNIST size — x 30000 x 1 x 128
x 99 float32 in [0, 1], random but clustered around 10 class templates — and the seed-0 run
directories the pipeline would have for it: kmeans and gmm_em (space input), uvac (z), cat_uvac
(z and q(y|x)) and pca_kmeans (pca), each an embeddings.npz + metrics.json. Then it times, as
Snakemake would run them with --cores 2 (two jobs at a time, each a fresh process with one BLAS /
OpenMP thread, as Snakemake sets for a threads: 1 rule):

  evaluate   uvac.evaluation.score_run for each run (the evaluate rule: accuracy, NMI, silhouette,
             DBI, CHI in each of the model's spaces), with --silhouette-sample (stated in scores.json
             as silhouette_n; DBI and CHI always use every clip);
  tsne       uvac.report.tsne_file of the UVAC Fig. 3 spec (kmeans, gmm_em, uvac; perplexity and
             figures.tsne_max_points from params.yaml), as the tsne_figure rule calls it.

Reference, in the same run and the same kind of process: scikit-learn's exact silhouette_score —
on z over all clips (measured), and on the input space over a --ref-subset of clips, scaled by
(N / subset)^2 to the full test set (O(N^2 D)). Target: the whole evaluation (its makespan on
2 cores) under 60 s. Prints a table; writes results/benchmarks/evaluation.json.

    .venv/bin/python benchmarks/evaluation.py [--n 30000] [--silhouette-sample 3000] [--cores 2]

The silhouette sample is stated, never implied: scores.json holds silhouette_n per space, the JSON
here the sample and where it came from, and the printout the sampled and the exact z silhouette.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from common import write_report  # benchmarks/common.py

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "results" / "benchmarks"
SHAPE = (1, 128, 99)
K = 10
TARGET_S = 60.0
DATASET = "bench"
# the run of each method: its model (uvac.evaluation.SPACES decides the spaces it is scored in)
RUNS = {"kmeans": "kmeans", "gmm_em": "gmm_em", "uvac": "uvac", "cat_uvac": "cat_uvac", "pca_kmeans": "pca_kmeans"}
TSNE_METHODS = ["kmeans", "gmm_em", "uvac"]  # params.yaml figures.tsne.uvac_fig3_tsne
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


# --- data (untimed) ------------------------------------------------------------------------------

def _noisy(labels: np.ndarray, share: float, rng) -> np.ndarray:
    out = labels.copy()
    flip = rng.random(len(out)) < share
    out[flip] = rng.integers(0, K, flip.sum())
    return out


def _latent(labels: np.ndarray, dim: int, rng, spread: float = 2.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered latent means, their nearest-centre clusters and a softmax posterior."""
    centres = rng.normal(scale=spread, size=(K, dim))
    z = (centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32)
    d2 = ((z[:, None, :] - centres[None]) ** 2).sum(-1)
    logits = -0.5 * d2
    proba = np.exp(logits - logits.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    return z, proba.astype(np.float32), d2.argmin(1)


def make_data(root: Path, n: int, seed: int = 0) -> dict:
    """features/bench/{test.npz,summary.json,manifest.parquet} and runs/bench/<method>/k10/seed0/."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(K), -(-n // K))[:n]
    rng.shuffle(labels)
    features = root / "features" / DATASET
    features.mkdir(parents=True)
    # smooth class templates (a spectral envelope times a temporal envelope) plus noise
    f = np.linspace(0, 1, SHAPE[1])[None, :, None]
    t = np.linspace(0, 1, SHAPE[2])[None, None, :]
    centre_f, centre_t = rng.uniform(0.1, 0.9, (K, 1, 1)), rng.uniform(0.2, 0.8, (K, 1, 1))
    templates = (np.exp(-((f - centre_f) / 0.15) ** 2) * np.exp(-((t - centre_t) / 0.25) ** 2)).astype(np.float32)
    x = np.empty((n, *SHAPE), np.float32)
    for s in range(0, n, 2000):
        lab = labels[s:s + 2000]
        x[s:s + 2000, 0] = np.clip(0.6 * templates[lab] + 0.4 * rng.random((len(lab), *SHAPE[1:]), dtype=np.float32), 0, 1)
    clip_id = np.array([f"clip{i:05d}" for i in range(n)])
    np.savez(features / "test.npz", x=x, mask=np.ones((n, SHAPE[2]), np.float32), clip_id=clip_id, label_id=labels)
    del x
    pd.DataFrame({"clip_id": clip_id, "split": "test", "label_id": labels}).to_parquet(features / "manifest.parquet")
    (features / "summary.json").write_text(json.dumps({"labels": [str(i) for i in range(K)]}))

    for method in RUNS:
        run = root / "runs" / DATASET / method / f"k{K}" / "seed0"
        run.mkdir(parents=True)
        empty = np.zeros((n, 0), np.float32)
        if method in ("kmeans", "gmm_em"):
            z, proba, cluster = empty, empty, _noisy(labels, 0.3 if method == "kmeans" else 0.4, rng)
        else:
            z, proba, cluster = _latent(_noisy(labels, 0.25, rng), 4 if method == "pca_kmeans" else 10, rng)
            if method == "pca_kmeans":
                proba = empty
        np.savez(run / "embeddings.npz", clip_id=clip_id, label_id=labels, z=z, proba=proba, cluster=cluster)
        (run / "metrics.json").write_text(json.dumps({"n_test": n, "k": K, "seed": 0, "device": "cpu"}))
    return {"features": str(features), "runs": str(root / "runs")}


# --- jobs (each in a fresh process with one thread, as a Snakemake job of a threads: 1 rule) -------

def job_evaluate(method: str, root: str, silhouette_sample: int | None, seed: int) -> dict:
    t = time.perf_counter()
    from uvac import evaluation
    imported = time.perf_counter()
    run = Path(root) / "runs" / DATASET / method / f"k{K}" / "seed0"
    scores = evaluation.score_run(run, Path(root) / "features" / DATASET, model=RUNS[method], k=K,
                                  silhouette_sample=silhouette_sample, seed=seed)
    return {"step": f"evaluate {method}", "seconds": time.perf_counter() - t, "import_s": imported - t,
            "spaces": {s: {m: v for m, v in g.items()} for s, g in scores["spaces"].items()},
            "accuracy": scores["accuracy"], "nmi": scores["nmi"]}


def job_tsne(root: str, perplexity: float, max_points: int, seed: int) -> dict:
    t = time.perf_counter()
    from uvac import report
    imported = time.perf_counter()
    spec = {"dataset": DATASET, "k": K, "methods": TSNE_METHODS}
    methods = {m: {"model": RUNS[m]} for m in TSNE_METHODS}
    out = Path(root) / "figures" / "bench_tsne.png"
    report.tsne_file(spec, methods, out, perplexity=perplexity, max_points=max_points, seed=seed,
                     provenance_params={"figure": {"spec": spec, "tsne_perplexity": perplexity,
                                                   "tsne_max_points": max_points, "seed": seed}},
                     runs_root=Path(root) / "runs", features_root=Path(root) / "features")
    return {"step": "tsne figure", "seconds": time.perf_counter() - t, "import_s": imported - t,
            "png_bytes": out.stat().st_size}


def job_reference(root: str, ref_subset: int, seed: int, z_exact: bool) -> dict:
    """sklearn's exact silhouette: on all of z (measured), on a subset of the input (scaled)."""
    from sklearn.metrics import silhouette_score
    from uvac.pipeline import load_split
    out = {"step": "reference (sklearn exact silhouette)"}
    run = Path(root) / "runs" / DATASET / "uvac" / f"k{K}" / "seed0"
    with np.load(run / "embeddings.npz") as emb:
        z, cluster = emb["z"], emb["cluster"]
    if z_exact:
        t = time.perf_counter()
        out["z_exact_silhouette"] = float(silhouette_score(z, cluster))
        out["z_exact_s"] = time.perf_counter() - t
    test = load_split(Path(root) / "features" / DATASET, "test")
    x = test["x"].reshape(len(test["x"]), -1)
    with np.load(Path(root) / "runs" / DATASET / "kmeans" / f"k{K}" / "seed0" / "embeddings.npz") as emb:
        km = emb["cluster"]
    idx = np.sort(np.random.default_rng(seed).choice(len(x), ref_subset, replace=False))
    t = time.perf_counter()
    out["input_subset_silhouette"] = float(silhouette_score(x[idx].astype(np.float64), km[idx]))
    out["input_subset_s"] = time.perf_counter() - t
    out["input_subset"] = ref_subset
    out["input_exact_estimated_s"] = out["input_subset_s"] * (len(x) / ref_subset) ** 2
    return out


def pool(cores: int) -> ProcessPoolExecutor:
    """A fresh process (spawn) per job with one BLAS / OpenMP thread, like `snakemake --cores N` jobs
    (main() sets the thread variables before any pool starts; this process's own BLAS was
    initialised at import, before that)."""
    return ProcessPoolExecutor(max_workers=cores, mp_context=get_context("spawn"), max_tasks_per_child=1)


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(), "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30000, help="test clips (default 30000, the full AudioMNIST)")
    ap.add_argument("--silhouette-sample", default="3000",
                    help="clips in the silhouette sample: a number (default 3000, the paper's AudioMNIST test "
                         "split size), 'exact' (~400 s per input-space run at 30000 clips), or 'params' "
                         "(params.yaml evaluate.silhouette_sample; null there means exact)")
    ap.add_argument("--cores", type=int, default=2, help="jobs at a time, as snakemake --cores")
    ap.add_argument("--tsne-max-points", type=int, default=None,
                    help="points per t-SNE map (default: params.yaml figures.tsne_max_points)")
    ap.add_argument("--ref-subset", type=int, default=2000, help="clips of the input-space sklearn reference")
    ap.add_argument("--no-z-reference", action="store_true", help="skip sklearn's exact silhouette on all of z")
    ap.add_argument("--workdir", default=None, help="where to build the data (default: a temporary folder)")
    ap.add_argument("--out", default=str(OUT_DIR / "evaluation.json"))
    args = ap.parse_args()

    from uvac import params as P
    params = P.load(REPO / "params.yaml")
    fig = dict(params["figures"])
    if args.tsne_max_points is not None:
        fig["tsne_max_points"] = args.tsne_max_points
    if args.silhouette_sample == "params":
        sample, sample_from = params["evaluate"]["silhouette_sample"], "params.yaml evaluate.silhouette_sample"
    elif args.silhouette_sample == "exact":
        sample, sample_from = None, "--silhouette-sample exact"
    else:
        sample, sample_from = int(args.silhouette_sample), "--silhouette-sample"
    seed = params["seed"]
    before = machine()
    os.environ.update({v: "1" for v in THREAD_VARS})  # for the job processes started below

    with tempfile.TemporaryDirectory(prefix="uvac-eval-", dir=args.workdir) as tmp:
        t = time.perf_counter()
        make_data(Path(tmp), args.n, seed)
        print(f"built a {args.n}-clip test set ({args.n * int(np.prod(SHAPE)) * 4 / 2**30:.2f} GiB) and "
              f"{len(RUNS)} runs in {time.perf_counter() - t:.1f} s (not timed)")
        print(f"silhouette sample: {sample if sample is not None else 'exact'} ({sample_from}); "
              f"t-SNE max points {fig['tsne_max_points']}, perplexity {fig['tsne_perplexity']}; {args.cores} jobs at a time")

        with pool(args.cores) as ex:
            t0 = time.perf_counter()
            futures = {m: ex.submit(job_evaluate, m, tmp, sample, seed) for m in RUNS}
            wait([futures[m] for m in TSNE_METHODS])  # the figure rule needs their scores.json
            futures["tsne"] = ex.submit(job_tsne, tmp, fig["tsne_perplexity"], fig["tsne_max_points"], seed)
            steps = [f.result() for f in futures.values()]
            total = time.perf_counter() - t0
        with pool(1) as ex:  # the reference alone, so it does not share the cores with the above
            ref = ex.submit(job_reference, tmp, min(args.ref_subset, args.n), seed, not args.no_z_reference).result()

    z_sampled = next(s for s in steps if s["step"] == "evaluate uvac")["spaces"]["z"]
    result = {
        "benchmark": "evaluation", "n_test": args.n, "shape": list(SHAPE), "k": K, "cores": args.cores,
        "silhouette_sample": sample, "silhouette_sample_from": sample_from,
        "params_silhouette_sample": params["evaluate"]["silhouette_sample"],
        "tsne_max_points": fig["tsne_max_points"], "tsne_perplexity": fig["tsne_perplexity"],
        "steps": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.items()} for s in steps],
        "total_s": round(total, 2), "target_s": TARGET_S, "met": bool(total < TARGET_S),
        "serial_sum_s": round(sum(s["seconds"] for s in steps), 2),
        "reference": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in ref.items()},
        "uvac_z_silhouette": z_sampled["silhouette"], "uvac_z_silhouette_n": z_sampled["silhouette_n"],
        "load": {"before": before["load_avg"], "after": machine()["load_avg"]},
    }
    if "z_exact_silhouette" in ref:
        result["uvac_z_silhouette_abs_diff_vs_exact"] = abs(z_sampled["silhouette"] - ref["z_exact_silhouette"])

    print()
    print(f"{'step':<28} {'seconds':>8}  details")
    for s in steps:
        detail = ", ".join(f"{sp}: sil {g['silhouette']:.3f} (n {g['silhouette_n']}), DBI {g['dbi']:.3f}, CHI {g['chi']:.1f}"
                           for sp, g in s.get("spaces", {}).items())
        print(f"{s['step']:<28} {s['seconds']:>8.2f}  {detail}")
    print(f"{'total (makespan, ' + str(args.cores) + ' jobs)':<28} {total:>8.2f}  target < {TARGET_S:g} s: "
          f"{'met' if result['met'] else 'NOT met'}; serial sum {result['serial_sum_s']:.1f} s")
    print(f"reference: sklearn exact silhouette on the input space: {ref['input_subset_s']:.2f} s for "
          f"{ref['input_subset']} clips -> ~{ref['input_exact_estimated_s']:.0f} s for {args.n} (x (N/n)^2)")
    if "z_exact_s" in ref:
        print(f"reference: sklearn exact silhouette on all of z (uvac): {ref['z_exact_s']:.2f} s, value "
              f"{ref['z_exact_silhouette']:.4f}; the evaluated one: {z_sampled['silhouette']:.4f} "
              f"(n {z_sampled['silhouette_n']}, |diff| {result['uvac_z_silhouette_abs_diff_vs_exact']:.4f})")
    result["targets"] = [{
        "target": f"evaluation of a {args.n}-clip test set (scores of {len(RUNS)} runs + the t-SNE figure) "
                  f"< {TARGET_S:g} s on {args.cores} cores",
        "figure": f"{total:.1f} s (silhouette {'exact' if sample is None else f'on a {sample}-clip sample'}; "
                  f"t-SNE {fig['tsne_max_points']} points; sklearn exact input-space "
                  f"silhouette alone ~{ref['input_exact_estimated_s']:.0f} s)",
        "met": result["met"]}]
    write_report(args.out, result)


if __name__ == "__main__":
    main()
