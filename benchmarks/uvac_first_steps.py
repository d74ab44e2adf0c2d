"""How far the first epoch of UVAC's full loss moves a cluster start, at several learning rates.

Builds the start of a uvac method with cluster_init_epochs once (pre-training, the pretext embedding,
the responsibilities taught its K-means clusters, as uvac.training.train does), then for each learning
rate runs one epoch of the full loss from a copy of it, at that constant rate with a fresh Adam, as
train does after the initialisation. It reports how far the first step moves the training clips'
latent means (beside the smallest distance between the prior's components), and the clustering
accuracy of the responsibilities on the training split with the components in use, before and after
the epoch. uvac_pretext_speakers takes its learning rate from this (docs/accuracy.md).

    .venv/bin/python benchmarks/uvac_first_steps.py data/features/fsdd uvac_neighbours_consistency \\
        --configfile config/cpu-accuracy.yaml --set 'neighbour_space="pretext"' pretext_epochs=100 \\
        speaker_centred=true cluster_init_epochs=5 --lrs 5e-4 2e-4 1e-4 5e-5

--embedding FILE.npy keeps the pretext embedding of the training clips (uvac.pretext.pretext_embedding
with the method's pretext_epochs and seed): computed and saved there when FILE is missing, read from it
otherwise, which spares the encoder's half hour on a second run.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from common import OUT_DIR, add_method_arguments, method_settings, write_report  # benchmarks/common.py
import uvac.pretext as pretext
from uvac import training
from uvac.io import atomic_path
from uvac.metrics import label_scores
from uvac.models import MODELS
from uvac.pipeline import load_split
from uvac.runs import clip_speakers, make_estimator


def keep_embedding(path: Path, n_clips: int) -> None:
    """Route uvac.pretext.pretext_embedding through path: saved there when missing, read from it otherwise."""
    compute = pretext.pretext_embedding

    def embedding(x, mask=None, **kw):
        if path.exists():
            saved = np.load(path)
            if len(saved) != n_clips:
                raise SystemExit(f"{path}: {len(saved)} rows; expected the {n_clips} training clips' embedding")
            return saved
        out = compute(x, mask, **kw)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # np.save would add .npy to a temporary name
            np.save(f, out)
        return out
    pretext.pretext_embedding = embedding


def responsibilities_score(model, x, labels, k) -> dict:
    mu, log_gamma = training.infer(model, x)
    clusters = np.asarray(log_gamma).argmax(1)
    return {"accuracy": round(label_scores(labels, clusters, k)[0]["accuracy"], 4),
            "components_used": int(len(np.unique(clusters))), "mu": torch.as_tensor(mu)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_method_arguments(ap, "uvac_pretext_speakers")
    ap.add_argument("--lrs", nargs="+", type=float, default=[5e-4, 2e-4, 1e-4, 5e-5])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedding", type=Path, help="where the pretext embedding is kept (see above)")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "uvac_first_steps.json")
    args = ap.parse_args()

    params, method, _ = method_settings(args)
    if method["model"] != "uvac" or not method.get("cluster_init_epochs"):
        raise SystemExit(f"{args.method}: needs a uvac method with cluster_init_epochs >= 1 (--set may add it)")
    cfg = make_estimator(method, args.k, args.seed, params["train"], threads=1).config
    split = load_split(args.features, "train")
    x, mask = torch.from_numpy(split["x"]), torch.from_numpy(split["mask"]).float()
    speakers = clip_speakers(args.features, split["clip_id"]) if cfg.speaker_centred else None
    if args.embedding:
        keep_embedding(args.embedding, len(x))
    torch.set_num_threads(1)
    device, perm_gen = torch.device("cpu"), torch.Generator().manual_seed(args.seed)

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    start = MODELS["uvac"](tuple(x.shape[1:]), args.k, method["latent_dim"])
    if cfg.pretrain_epochs:
        training.pretrain(start, x, mask, cfg, device, perm_gen)
    embedding = training.pretext_points(x, mask, cfg, device, speakers)
    training.init_clusters(start, x, mask, cfg, device, perm_gen, embedding)
    neighbours = torch.from_numpy(training.training_neighbours(x, mask, cfg, device, speakers, embedding)) \
        if cfg.neighbour_weight else None
    before = responsibilities_score(start, x, split["label_id"], args.k)
    components = torch.cdist(start.prior_mu, start.prior_mu).detach()
    report = {"features": str(args.features), "method": args.method, "settings": method, "seed": args.seed,
              "start_s": round(time.perf_counter() - t0),
              "start": {"accuracy": before["accuracy"], "components_used": before["components_used"],
                        "closest_components": round(float(components[components > 0].min()), 3)},
              "epochs": []}
    print(json.dumps(report["start"]))

    settings = training.loss_settings(start, cfg, 0)  # the full loss's first epoch
    for lr in args.lrs:
        model = copy.deepcopy(start)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        torch.manual_seed(args.seed)
        perm, moved = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed)), None
        for b in range(0, len(x), cfg.batch_size):
            idx = perm[b:b + cfg.batch_size]
            extra = {"x_neighbour": training.neighbour_batch(x, neighbours, idx)} if neighbours is not None else {}
            xb = x[idx].contiguous(memory_format=training.memory_format(x))
            model.train()  # responsibilities_score leaves it in eval mode
            loss = model.loss(xb, mask[idx], **settings, **extra)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if moved is None:
                mu = responsibilities_score(model, x, split["label_id"], args.k)["mu"]
                moved = float((mu - before["mu"]).norm(dim=1).mean())
        after = responsibilities_score(model, x, split["label_id"], args.k)
        row = {"lr": lr, "first_step_moves_mu_by": round(moved, 3), "accuracy_after_epoch": after["accuracy"],
               "components_used_after_epoch": after["components_used"]}
        report["epochs"].append(row)
        print(json.dumps(row), flush=True)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
