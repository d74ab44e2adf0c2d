"""How far the first epoch of the full loss moves a cluster start, at several learning rates.

Builds the start of a uvac or cat_uvac method with cluster_init_epochs once (uvac's pre-training, the
pretext embedding, the cluster posterior taught its K-means clusters, as uvac.training.train does), then
for each learning rate runs one epoch of the full loss from a copy of it, at that constant rate with a
fresh Adam, as train does after the initialisation. It reports the start's margin (the median over
training clips of log q of its cluster less that of the runner-up), how far the first step moves the
latent means (uvac: beside the smallest distance between the prior's components) and what share of
the clips it moves to another cluster, then the clustering accuracy on the training split with the
clusters in use after the epoch. uvac_pretext_speakers takes its learning rate from this
(docs/accuracy.md). --warmups W... runs each rate again with it rising over the first W steps, as
lr_warmup_steps does in training (uvac.training.warmup_factor).

    .venv/bin/python benchmarks/uvac_first_steps.py data/features/fsdd uvac_neighbours_consistency \\
        --configfile config/cpu-accuracy.yaml --set 'neighbour_space="pretext"' pretext_epochs=100 \\
        speaker_centred=true cluster_init_epochs=5 --lrs 5e-4 2e-4 1e-4 5e-5

--pretext FILE.npz keeps the pretext embedding of the training clips (as rule pretext writes it): made
there when FILE is missing, read from it otherwise, which spares the encoder's half hour on a second run.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from common import OUT_DIR, add_method_arguments, add_pretext_argument, kept_pretext, method_settings, write_report
from uvac import training
from uvac.metrics import label_scores
from uvac.models import MODELS
from uvac.pipeline import load_split
from uvac.runs import clip_speakers, make_estimator


def cluster_state(model, x, labels, k) -> dict:
    """The training clips' latent means, clusters (argmax of the cluster posterior) and margins, and
    the accuracy of those clusters with how many are in use."""
    mu, log_q = training.infer(model, x)
    clusters, ordered = log_q.argmax(1), np.sort(log_q, 1)
    return {"accuracy": round(label_scores(labels, clusters, k)[0]["accuracy"], 4),
            "clusters_used": int(len(np.unique(clusters))), "mu": mu, "clusters": clusters,
            "median_margin": round(float(np.median(ordered[:, -1] - ordered[:, -2])), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_method_arguments(ap, "uvac_pretext_speakers")
    add_pretext_argument(ap)
    ap.add_argument("--lrs", nargs="+", type=float, default=[5e-4, 2e-4, 1e-4, 5e-5])
    ap.add_argument("--warmups", nargs="+", type=int, default=[0],
                    help="for each rate, also with it rising linearly over this many first steps (0: none)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT_DIR / "uvac_first_steps.json")
    args = ap.parse_args()

    params, method, _ = method_settings(args)
    if method["model"] not in training.CLUSTER_REMEDY_MODELS or not method.get("cluster_init_epochs"):
        raise SystemExit(f"{args.method}: needs a uvac or cat_uvac method with cluster_init_epochs >= 1 "
                         "(--set may add it)")
    cfg = make_estimator(method, args.k, args.seed, params["train"], threads=1).config
    split = load_split(args.features, "train")
    x, mask = torch.from_numpy(split["x"]), torch.from_numpy(split["mask"]).float()
    speakers = clip_speakers(args.features, split["clip_id"]) if cfg.speaker_centred else None
    made = kept_pretext(args, method, args.seed, params["train"], split["clip_id"])
    torch.set_num_threads(1)
    device, perm_gen = torch.device("cpu"), torch.Generator().manual_seed(args.seed)

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    start = MODELS[method["model"]](tuple(x.shape[1:]), args.k, method["latent_dim"])
    if cfg.pretrain_epochs:
        training.pretrain(start, x, mask, cfg, device, perm_gen)
    embedding = training.pretext_points(x, mask, cfg, device, speakers, made)
    training.init_clusters(start, x, mask, cfg, device, perm_gen, embedding)
    neighbours = torch.from_numpy(training.training_neighbours(x, mask, cfg, device, speakers, embedding)) \
        if cfg.neighbour_weight else None
    before = cluster_state(start, x, split["label_id"], args.k)
    report = {"features": str(args.features), "method": args.method, "settings": method, "seed": args.seed,
              "start_s": round(time.perf_counter() - t0),
              "start": {key: before[key] for key in ("accuracy", "clusters_used", "median_margin")},
              "epochs": []}
    if method["model"] == "uvac":
        components = torch.cdist(start.prior_mu, start.prior_mu).detach()
        report["start"]["closest_components"] = round(float(components[components > 0].min()), 3)
    print(json.dumps(report["start"]))

    settings = training.loss_settings(start, cfg, 0)  # the full loss's first epoch
    for lr, warmup in itertools.product(args.lrs, args.warmups):
        model = copy.deepcopy(start)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        torch.manual_seed(args.seed)
        perm, first = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed)), None
        for step, b in enumerate(range(0, len(x), cfg.batch_size)):
            optimizer.param_groups[0]["lr"] = lr * training.warmup_factor(step, warmup)
            idx = perm[b:b + cfg.batch_size]
            extra = {"x_neighbour": training.neighbour_batch(x, neighbours, idx)} if neighbours is not None else {}
            xb = x[idx].contiguous(memory_format=training.memory_format(x))
            model.train()  # cluster_state leaves it in eval mode
            loss = model.loss(xb, mask[idx], **settings, **extra)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if first is None:
                first = cluster_state(model, x, split["label_id"], args.k)
        after = cluster_state(model, x, split["label_id"], args.k)
        moved = np.linalg.norm(first["mu"] - before["mu"], axis=1).mean()
        row = {"lr": lr, "warmup_steps": warmup, "first_step_moves_mu_by": round(float(moved), 3),
               "first_step_reassigns": round(float((first["clusters"] != before["clusters"]).mean()), 4),
               "accuracy_after_first_step": first["accuracy"], "clusters_used_after_first_step": first["clusters_used"],
               "accuracy_after_epoch": after["accuracy"], "clusters_used_after_epoch": after["clusters_used"]}
        report["epochs"].append(row)
        print(json.dumps(row), flush=True)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
