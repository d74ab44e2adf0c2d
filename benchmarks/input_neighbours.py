"""What a clip's nearest neighbours in the input share, and what clustering the neighbour graph finds.

A clustering objective built on neighbours (SCAN's, Categorical UVAC's neighbour_weight) can
only find classes that neighbours share. For all labelled clips of a feature cache (train and test
together), in the PCA of the flattened input as K-means sees it: how often a clip's k nearest other
clips have its label, and its speaker (where the manifest names speakers); then the clustering
accuracy of K-means and of spectral clustering on the 10-nearest-neighbour graph, for all clips and
within each speaker, to tell a neighbour graph that joins a class across speakers from one that
joins it only within a speaker. `--space log_cmn` asks the same of the log magnitudes with each
band's mean over the clip's active frames taken away (cepstral mean normalisation, the usual way
to take a speaker's or a channel's spectral colouring out of speech features; Categorical UVAC's
neighbour_space); `--space log_cmn_stretched` also stretches each clip's active frames over all its
frames; `--space log_cmn_loud_stretched` does both over each clip's loud span only; `--space pretext`
asks it of the embedding of uvac.pretext's contrastive encoder, trained here on these clips for
--pretext-epochs epochs of --pretext-batch-size clips. The label pairs whose clips are most often each
other's neighbours are listed too, and how often a clip's nearest clip of another speaker (in the PCA
K-means sees) has its label. `--centre-speakers` first takes each speaker's mean out of the space: what
the space holds of the label once the speaker's offset is gone (speaker normalisation, which needs the
manifest's speakers, not labels).

    .venv/bin/python benchmarks/input_neighbours.py data/features/fsdd [--space SPACE]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.decomposition import PCA

from common import OUT_DIR, write_report  # benchmarks/common.py
from uvac.baselines import flat
from uvac.metrics import unsupervised_accuracy
from uvac.neighbours import NEIGHBOUR_SPACES, centre_groups, mine_neighbours, nearest_of_other_groups, nearest_others, to_space
from uvac.pretext import BATCH_SIZE as PRETEXT_BATCH_SIZE, SPACE as PRETEXT, pretext_embedding
from uvac.pipeline import load_split


def shared_fraction(neighbours: np.ndarray, values: np.ndarray) -> float:
    """How often a clip's neighbours have its value (label, speaker), over all clips and neighbours."""
    return round(float((values[neighbours] == values[:, None]).mean()), 4)


def most_shared_pairs(neighbours: np.ndarray, labels: np.ndarray, names: list, top: int = 5) -> list[dict]:
    """The `top` ordered label pairs (a, b) with the largest share of a's clips' neighbours labelled b."""
    shares = [{"label": names[a], "neighbour": names[b],
               "share": round(float((labels[neighbours[labels == a]] == b).mean()), 4)}
              for a in np.unique(labels) for b in np.unique(labels) if a != b]
    return sorted(shares, key=lambda row: -row["share"])[:top]


def reduce(x: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    # fewer components than clips: a square input reads to SpectralClustering as an affinity matrix
    return PCA(min(n_components, len(x) - 1, flat(x).shape[1]), random_state=seed).fit_transform(flat(x))


def clustering_accuracies(reduced: np.ndarray, labels: np.ndarray, k: int, seed: int) -> dict:
    """K-means and spectral clustering accuracy on points already reduced by `reduce`."""
    clusters = {"kmeans": KMeans(k, n_init=10, random_state=seed).fit_predict(reduced),
                "spectral": SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=10,
                                               random_state=seed).fit_predict(reduced)}
    return {name: round(unsupervised_accuracy(labels, c), 4) for name, c in clusters.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", type=Path, help="a feature cache with train and test splits, e.g. data/features/fsdd")
    ap.add_argument("--components", type=int, default=100, help="PCA dimensions of the flattened input")
    ap.add_argument("--neighbours", type=int, nargs="+", default=[1, 5, 20], help="neighbour counts to report")
    ap.add_argument("--space", choices=(*NEIGHBOUR_SPACES, PRETEXT), default="input",
                    help="the input as K-means sees it, as uvac.neighbours.to_space gives it, or uvac.pretext's embedding")
    ap.add_argument("--pretext-epochs", type=int, default=100, help="epochs of the contrastive encoder (--space pretext)")
    ap.add_argument("--pretext-batch-size", type=int, default=PRETEXT_BATCH_SIZE, help="its clips per step")
    ap.add_argument("--centre-speakers", action="store_true", help="take each speaker's mean out of the space first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="report path (default results/benchmarks/input_neighbours_<dataset>[_<space>][_centred].json)")
    args = ap.parse_args()

    splits = [load_split(args.features, name) for name in ("train", "test")]
    x, mask = (np.concatenate([s[key] for s in splits]) for key in ("x", "mask"))
    labels = np.concatenate([s["label_id"] for s in splits])
    clip_ids = np.concatenate([s["clip_id"] for s in splits])
    if (labels < 0).any():
        raise SystemExit(f"{args.features}: some clips have no label; neighbour agreement needs every clip labelled")
    manifest = pd.read_parquet(args.features / "manifest.parquet").set_index("clip_id")
    speakers = manifest["speaker"].loc[clip_ids].to_numpy() if "speaker" in manifest else None
    k = len(np.unique(labels))
    if args.centre_speakers and (speakers is None or pd.isna(speakers).any()):
        raise SystemExit(f"{args.features}/manifest.parquet: --centre-speakers needs a speaker for every clip")

    if args.space == PRETEXT:
        x = pretext_embedding(x, mask, epochs=args.pretext_epochs, batch_size=args.pretext_batch_size, seed=args.seed,
                              progress=True)
        if args.centre_speakers:
            x = centre_groups(x, speakers)
            x /= np.linalg.norm(x, axis=1, keepdims=True)  # cosine neighbours, as the embedding's own
        neighbours = nearest_others(x, max(args.neighbours))
    else:
        x = to_space(x, mask, args.space)
        if args.centre_speakers:
            x = centre_groups(x, speakers)
        neighbours = mine_neighbours(x, max(args.neighbours), args.components)
    names = json.loads((args.features / "summary.json").read_text())["labels"]
    pairs = most_shared_pairs(neighbours[:, :5], labels, names)
    agreement = [{"neighbours": n, "label": shared_fraction(neighbours[:, :n], labels),
                  "speaker": None if speakers is None else shared_fraction(neighbours[:, :n], speakers)}
                 for n in args.neighbours]
    reduced = reduce(x, args.components, args.seed)  # all clips: for K-means and the other-speaker neighbours
    across = None if speakers is None else \
        shared_fraction(nearest_of_other_groups(reduced, speakers), labels)
    clustering = [{"clips": "all clips", "n": len(x), **clustering_accuracies(reduced, labels, k, args.seed)}]
    if speakers is not None:  # each speaker's clips reduced on their own
        clustering += [{"clips": f"speaker {s}", "n": int((speakers == s).sum()),
                        **clustering_accuracies(reduce(x[speakers == s], args.components, args.seed),
                                                labels[speakers == s], k, args.seed)}
                       for s in np.unique(speakers)]
    per_speaker = clustering[1:]
    speaker_mean = {name: round(float(np.mean([row[name] for row in per_speaker])), 4)
                    for name in ("kmeans", "spectral")} if per_speaker else None

    for row in agreement:
        print(f"{row['neighbours']:>3} nearest: same label {100 * row['label']:6.2f} %"
              + ("" if row["speaker"] is None else f"  same speaker {100 * row['speaker']:6.2f} %"))
    for row in clustering:
        print(f"{row['clips']:<20} {row['n']:>5} clips  K-means {100 * row['kmeans']:6.2f} %"
              f"  spectral {100 * row['spectral']:6.2f} %")
    if across is not None:
        print(f"nearest clip of another speaker: same label {100 * across:6.2f} %")
    print("most shared label pairs (of a clip's 5 nearest): "
          + ", ".join(f"{row['label']} -> {row['neighbour']} {100 * row['share']:.1f} %" for row in pairs))
    if speaker_mean:
        print(f"{f'mean of {len(per_speaker)} speakers':<32}  K-means {100 * speaker_mean['kmeans']:6.2f} %"
              f"  spectral {100 * speaker_mean['spectral']:6.2f} %")
    suffix = ("" if args.space == "input" else f"_{args.space}") + ("_centred" if args.centre_speakers else "")
    write_report(args.out or OUT_DIR / f"input_neighbours_{args.features.name}{suffix}.json",
                 {"features": str(args.features), "space": args.space,
                  "components": args.components, "k": k, "seed": args.seed,
                  "pretext_epochs": args.pretext_epochs if args.space == PRETEXT else None,
                  "pretext_batch_size": args.pretext_batch_size if args.space == PRETEXT else None,
                  "centre_speakers": args.centre_speakers, "agreement": agreement,
                  "another_speaker_nearest_same_label": across, "most_shared_pairs": pairs, "clustering": clustering,
                  "speaker_mean": speaker_mean})


if __name__ == "__main__":
    main()
