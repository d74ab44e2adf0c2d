"""One-seed trials of changes to the models that params.yaml does not offer, on a feature cache.

Each trial trains one params.yaml method (its settings from params.yaml plus overlays, some
overridden) through uvac.runs.make_estimator, with zero or more of the changes below patched in
for this process only, then reports the test clustering accuracy, the clusters in use, the linear
probe of the model's embedding (as benchmarks/linear_probe.py) and the fit time. The changes:

  dense_decoder      the decoder maps the code to the whole (128, F', T') grid with one linear
                     layer, instead of broadcasting a 128-vector over it (the paper's decoder can
                     only draw time-frequency structure from the grid's edges)
  z_invariance       UVAC: W x sum over dims of (mu(x) - mu(view))^2 / batch variance of mu, in the
                     pre-training and in the full loss: the latent means of a clip and of its view
                     (shifted in time, stretched in frequency like another vocal tract) should agree,
                     so that the mixture fitted after pre-training finds less of the speaker
  time_stretch       the consistency views are also stretched in time by up to this fraction
  iic                Categorical UVAC: - W x I(y; y'), the mutual information of the clusters of a
                     clip and of its view (IIC, Ji et al. 2019), symmetrised joint over the batch
  (neighbour consistency, `--change neighbours` in commits fd465fc to 0008c4c, is now the neighbour_weight
  setting of Categorical UVAC: `--set neighbour_weight=30`, or the method cat_uvac_neighbours; its
  neighbours in log-CMN magnitudes are `--set neighbour_space='"log_cmn"'`, or cat_uvac_neighbours_cmn;
  log_cmn_stretched is cat_uvac_neighbours_stretched; `--change uvac_consistency=W uvac_info=W`, until commit
  c437c52, are now settings of UVAC too: `--set consistency_weight=W info_weight=W`)

    .venv/bin/python benchmarks/remedy_trials.py data/features/fsdd cat_uvac_info_consistency \\
        --configfile config/cpu-accuracy.yaml --change dense_decoder --set lr_start=0.005

With --speaker NAME only that speaker's clips are used (the manifest's speaker column): the model
trains on the speaker's training clips and is scored on all of the speaker's clips, since one
speaker's test split is too small to hold every digit. A baseline method (kmeans) runs the same way,
for the reference. No linear probe then: the scored clips include the ones it would learn from.

With --pretext FILE.npz a method that reads the pretext embedding reads it from FILE (made there first
when missing), as the pipeline's runs do: trials of one dataset, pretext_epochs and seed then spare the
encoder's half hour and give what the same trial without it gives.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from common import OUT_DIR, add_method_arguments, add_pretext_argument, kept_pretext, machine, method_settings
from linear_probe import probe_accuracy
import uvac.models.categorical as categorical
import uvac.models.uvac as uvac_model
from uvac.baselines import fit_predict
from uvac.metrics import label_scores
from uvac.models import cluster_remedies, layers
from uvac.pipeline import load_split
from uvac.runs import ESTIMATORS, clip_speakers, latents, make_estimator, write_run_outputs

CHANGES = ("dense_decoder", "z_invariance", "time_stretch", "iic")


def patch_dense_decoder(grid: tuple[int, int]) -> None:
    class DenseDecoder(layers.Decoder):
        def __init__(self, n_in):
            super().__init__(n_in)
            self.fc = nn.Linear(n_in, layers.CHANNELS[-1] * grid[0] * grid[1])

        def forward(self, code, n_freq, n_frames):
            h = self.fc(code).view(len(code), layers.CHANNELS[-1], *grid)
            return layers.fit_to(self.deconv(h), n_freq, n_frames)

    uvac_model.Decoder = categorical.Decoder = DenseDecoder


def patch_z_invariance(weight: float) -> None:
    base_loss, base_pretrain = uvac_model.UVAC.loss, uvac_model.UVAC.autoencoder_loss

    def invariance(model, x):
        mu, _ = model.encode(x)
        view_mu, _ = model.encode(cluster_remedies.shifted_and_warped(x, 0.1, 8))
        return ((mu - view_mu) ** 2).mean(0).div(mu.var(0).clamp_min(1e-6)).sum()  # scale-free: no pull to shrink

    def loss(self, x, mask, **kw):
        out = base_loss(self, x, mask, **kw)
        out["z_invariance"] = invariance(self, x)
        out["loss"] = out["loss"] + weight * out["z_invariance"]
        return out

    def autoencoder_loss(self, x, mask, **kw):
        return base_pretrain(self, x, mask, **kw) + weight * invariance(self, x)

    uvac_model.UVAC.loss, uvac_model.UVAC.autoencoder_loss = loss, autoencoder_loss


def patch_time_stretch(max_stretch: float) -> None:
    def shifted_and_warped(x, max_warp, max_shift):
        b, _, _, t = x.shape
        stretch = 1 + (torch.rand(b) * 2 - 1) * max_warp
        time_stretch = 1 + (torch.rand(b) * 2 - 1) * max_stretch
        shift = torch.randint(-max_shift, max_shift + 1, (b,)) * (2.0 / t)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = time_stretch, time_stretch - 1 + shift  # about the first frame
        theta[:, 1, 1], theta[:, 1, 2] = stretch, stretch - 1
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x.float(), grid, padding_mode="zeros", align_corners=False)

    cluster_remedies.shifted_and_warped = shifted_and_warped


def patch_iic(weight: float) -> None:
    base_loss = categorical.CategoricalUVAC.loss

    def loss(self, x, mask, **kw):
        out = base_loss(self, x, mask, **kw)
        q = F.softmax(self.logits(x), 1)
        q_view = F.softmax(self.logits(cluster_remedies.shifted_and_warped(x, 0.1, 8)), 1)
        joint = q.T @ q_view / len(q)
        joint = ((joint + joint.T) / 2).clamp_min(1e-8)
        out["iic"] = (joint * (joint.log() - joint.sum(1, keepdim=True).log() - joint.sum(0, keepdim=True).log())).sum()
        out["loss"] = out["loss"] - weight * out["iic"]
        return out

    categorical.CategoricalUVAC.loss = loss


def one_speaker(features: Path, speaker: str) -> tuple[dict, dict]:
    """(the speaker's training clips, all of the speaker's clips) from a spectrogram feature cache."""
    speakers = pd.read_parquet(features / "manifest.parquet").set_index("clip_id")["speaker"]
    if speaker not in set(speakers):
        raise SystemExit(f"{features}/manifest.parquet: no clips of speaker {speaker!r}; "
                         f"expected one of {sorted(set(speakers.dropna()))}")

    def keep(split):
        mine = (speakers.loc[split["clip_id"]] == speaker).to_numpy()
        return {key: value[mine] for key, value in split.items()}

    train, val, test = (keep(load_split(features, name)) for name in ("train", "val", "test"))
    return train, {key: np.concatenate([train[key], val[key], test[key]]) for key in train}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_method_arguments(ap, "cat_uvac_info_consistency")
    add_pretext_argument(ap)
    ap.add_argument("--change", nargs="*", default=[], metavar="NAME[=WEIGHT]", help=f"changes to patch in: {', '.join(CHANGES)}")
    ap.add_argument("--speaker", help="train on this speaker's training clips, score on all of the speaker's clips")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", type=Path, help="also write a run directory here: model.pt, embeddings.npz, metrics.json (for linear_probe.py)")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "remedy_trials.jsonl", help="JSON lines, one per trial, appended")
    args = ap.parse_args()

    params, method, overrides = method_settings(args)
    changes = {name: float(weight or 1) for name, _, weight in (item.partition("=") for item in args.change)}
    unknown = sorted(set(changes) - set(CHANGES))
    if unknown:
        raise SystemExit(f"unknown change(s) {unknown}; expected {', '.join(CHANGES)}")

    if args.pretext and args.speaker:
        raise SystemExit("--pretext: the embedding of the whole training split cannot stand for one speaker's clips")
    if args.save and changes:
        raise SystemExit("--save: a model with patched-in changes could not be loaded back; save unchanged methods only")

    train, test = one_speaker(args.features, args.speaker) if args.speaker else \
        (load_split(args.features, "train"), load_split(args.features, "test"))
    if "dense_decoder" in changes:
        patch_dense_decoder((layers.conv_out(train["x"].shape[2]), layers.conv_out(train["x"].shape[3])))
    if "z_invariance" in changes:
        patch_z_invariance(changes["z_invariance"])
    if "time_stretch" in changes:
        patch_time_stretch(changes["time_stretch"])
    if "iic" in changes:
        patch_iic(changes["iic"])

    t0 = time.perf_counter()
    if method["model"] not in ESTIMATORS:  # a baseline: kmeans, gmm_em, pca_kmeans
        clusters, est = fit_predict(method, args.k, args.seed, train["x"], test["x"], test["label_id"])["cluster"], None
        fit_s = time.perf_counter() - t0
    else:
        est = make_estimator(method, args.k, args.seed, params["train"], threads=1)
        est.fit(train["x"], train["mask"],
                speakers=clip_speakers(args.features, train["clip_id"]) if method.get("speaker_centred") else None,
                pretext_embedding=kept_pretext(args, method, args.seed, params["train"], train["clip_id"]))
        fit_s = time.perf_counter() - t0
        clusters, (z_test, proba_test) = est.predict(test["x"]), latents(est, test["x"])
        if args.save:  # a run directory as the train rule writes it
            args.save.mkdir(parents=True, exist_ok=True)
            est.save(args.save / "model.pt")
            write_run_outputs(args.save, test, {"z": z_test, "proba": proba_test, "cluster": clusters},
                              k=args.k, seed=args.seed, extra=method)
    scores, _ = label_scores(test["label_id"], clusters, args.k)
    report = {"features": str(args.features), "method": args.method, "set": overrides, "changes": changes,
              "speaker": args.speaker, "seed": args.seed, "accuracy": scores["accuracy"], "nmi": scores["nmi"],
              "clusters_used": int(len(np.unique(clusters))), "fit_s": round(fit_s)}
    if est is not None and not args.speaker:
        report.update(probe_accuracy=probe_accuracy(np.hstack(latents(est, train["x"])), train["label_id"],
                                                    np.hstack([z_test, proba_test]), test["label_id"]),
                      last_epoch=est.history_[-1])
    report["machine"] = machine()
    print(json.dumps(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
