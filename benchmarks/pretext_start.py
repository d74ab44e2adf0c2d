"""Where the cluster initialisation starts: how much of the label the K-means clusters of a saved pretext
embedding find, with each speaker's share only centred or also whitened (speaker_whitening).

A pretext method's q(y|x) first learns the K-means clusters of the training clips' speaker-centred
embedding (uvac.training.start_clusters), and Categorical UVAC without the neighbour term keeps about what
it was taught (docs/accuracy.md). For each embedding rule pretext saved (one per seed) and each
--whitening D (0: centred only) this gives, on the training split, exactly as training computes them:
the accuracy of those K-means clusters, and how often a clip's --neighbours nearest clips of other
speakers (the neighbour term's) have its label.

    .venv/bin/python benchmarks/pretext_start.py data/features/fsdd results/runs/fsdd/pretext_e100_b256_seed*.npz
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common import OUT_DIR, write_report  # benchmarks/common.py
from uvac.metrics import unsupervised_accuracy
from uvac.neighbours import nearest_of_other_groups
from uvac.pipeline import load_split
from uvac.runs import clip_speakers, load_pretext
from uvac.training import TrainConfig, pretext_points, start_clusters


def start_scores(embedding: np.ndarray, labels: np.ndarray, speakers: np.ndarray, *, seed: int,
                 speaker_whitening: int, neighbours: int) -> dict:
    """The K-means start's accuracy and the other-speaker neighbours' label share, in the points training
    makes of this embedding (uvac.training.pretext_points) with the seed's K-means (start_clusters)."""
    cfg = TrainConfig(neighbour_space="pretext", speaker_centred=True, speaker_whitening=speaker_whitening, seed=seed)
    points = pretext_points(embedding, None, cfg, speakers=speakers, embedding=embedding)
    nearest = nearest_of_other_groups(points, speakers, neighbours)
    clusters = start_clusters(points, len(np.unique(labels)), seed)
    return {"kmeans_start_accuracy": round(unsupervised_accuracy(labels, clusters), 4),
            "other_speaker_neighbours_same_label": round(float((labels[nearest] == labels[:, None]).mean()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", type=Path, help="the feature cache the embeddings were made from")
    ap.add_argument("pretext", type=Path, nargs="+", help="pretext_e<E>_b<B>_seed<s>.npz files, as rule pretext writes them")
    ap.add_argument("--whitening", type=int, nargs="+", default=[0, 32], help="speaker_whitening values; 0 = centred only")
    ap.add_argument("--neighbours", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    train = load_split(args.features, "train")
    labels = train["label_id"]
    if (labels < 0).any():
        raise SystemExit(f"{args.features}: some training clips have no label; the start's accuracy needs them all")
    speakers = clip_speakers(args.features, train["clip_id"])
    rows = []
    for path in args.pretext:
        with np.load(path) as saved:
            made = {key: int(saved[key]) for key in ("epochs", "batch_size", "seed")}
        embedding = load_pretext(path, train["clip_id"], **made)
        for dims in args.whitening:
            row = {"pretext": str(path), **made, "speaker_whitening": dims,
                   **start_scores(embedding, labels, speakers, seed=made["seed"], speaker_whitening=dims,
                                  neighbours=args.neighbours)}
            rows.append(row)
            print(f"{path.name}  speaker_whitening {dims:>3}:  K-means start {100 * row['kmeans_start_accuracy']:6.2f} %"
                  f"  {args.neighbours} nearest of other speakers, same label "
                  f"{100 * row['other_speaker_neighbours_same_label']:6.2f} %")
    means = {dims: [row["kmeans_start_accuracy"] for row in rows if row["speaker_whitening"] == dims] for dims in args.whitening}
    for dims, values in means.items():
        print(f"speaker_whitening {dims:>3}: K-means start over {len(values)} embeddings "
              f"{100 * np.mean(values):6.2f} ± {100 * np.std(values, ddof=1) if len(values) > 1 else 0:.2f} %")
    write_report(args.out or OUT_DIR / f"pretext_start_{args.features.name}.json",
                 {"features": str(args.features), "training_clips": len(labels), "k": len(np.unique(labels)),
                  "neighbours": args.neighbours, "rows": rows})


if __name__ == "__main__":
    main()
