"""The `uvac` command: the pipeline's stages without Snakemake, for one dataset at a time."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from . import log, params as P


def _params(args) -> dict:
    return P.load(args.params, args.config)


def cmd_validate(args) -> None:
    resolved = _params(args)
    print(f"{args.params} (+ {', '.join(args.config) or 'no overlay'}): valid, params hash {P.digest(resolved)}")


def cmd_datasets(args) -> None:
    resolved = _params(args)
    for name, ds in resolved["datasets"].items():
        feat = ds["features"]
        where = ds.get("source") or ("generated" if "generator" in ds else "download")
        print(f"{name:14s} {ds['type']:13s} {ds['sample_rate']:>6d} Hz {ds['clip_seconds']:>5g} s "
              f"{feat['kind']:10s} split={ds['split']['method']:7s} source={where}")


def cmd_data(args) -> None:
    """raw → interim → features for one dataset, as the Snakemake rules would run them."""
    from . import pipeline
    resolved = _params(args)
    if args.dataset not in resolved["datasets"]:
        raise ValueError(f"{args.dataset!r} is not a key of datasets in {args.params} (known: {sorted(resolved['datasets'])})")
    cfg, root = resolved["datasets"][args.dataset], Path(args.data_root)
    info = pipeline.prepare_raw(args.dataset, cfg, root / "raw" / args.dataset, seed=resolved["seed"],
                                download=resolved["download"], workers=args.workers)
    interim = pipeline.build_interim(args.dataset, cfg, info["root"], root / "interim" / args.dataset,
                                     seed=resolved["seed"], workers=args.workers)
    feats = pipeline.build_features(args.dataset, cfg, root / "interim" / args.dataset,
                                    root / "features" / args.dataset, seed=resolved["seed"], workers=args.workers)
    print(json.dumps({"interim": interim, "features": feats}, indent=2))


def cmd_provenance(args) -> None:
    """What made a table or figure: its sidecar (or PNG metadata), readable or as JSON."""
    import yaml

    from . import provenance
    record = provenance.read(args.file)
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True))
        return
    code = record["code"]
    dirty = {True: " (uncommitted changes)", False: "", None: ""}[code["git_dirty"]]
    print(f"{args.file}\n  params hash   {record['params_hash']}\n"
          f"  code          uvac {code['uvac']}, git {code['git_commit'] or 'unknown (not a git checkout)'}{dirty}\n"
          f"  device        training on {', '.join(record['device']['training']) or 'n/a'}; host {record['device']['host']}\n"
          f"  seeds         {record['seeds']}")
    for name, manifest in record["data_manifests"].items():
        print(f"  data          {name}: {manifest['path']} sha256 {manifest['sha256'][:16]}")
    print("  packages      " + ", ".join(f"{k} {v}" for k, v in record["packages"].items() if v))
    print("  params (as the rule received them):")
    print("    " + yaml.safe_dump(record["params"], sort_keys=False).rstrip().replace("\n", "\n    "))


def _cluster_params(args) -> tuple[dict, Path]:
    """The params file for `cluster`: -p as given; the default params.yaml falls back to the
    checkout's own when the current folder has none (users run `uvac cluster` from anywhere)."""
    path = Path(args.params)
    if not path.exists() and args.params == "params.yaml":
        checkout = Path(__file__).resolve().parents[1] / "params.yaml"
        if checkout.exists():
            path = checkout
    if not path.exists():
        raise FileNotFoundError(f"{args.params}: no params file; `uvac cluster` takes the method settings "
                                "from its `methods:` (pass -p /path/to/uvac/params.yaml)")
    return P.load(path, args.config), path


def _interrupted(what: str, out) -> None:
    import logging
    logging.getLogger("uvac").error("%s: interrupted; every file in %s is complete (all are written atomically). "
                                    "Run the same command again to resume: finished stages are reused.", what, out)
    raise SystemExit(130)


def cmd_cluster(args) -> None:
    """Cluster a folder of recordings; see uvac.cluster."""
    from .cluster import cluster_folder
    params, path = _cluster_params(args)
    try:
        cluster_folder(args.dir, args.k, params=params, params_path=str(path), method_name=args.method,
                       out=args.out, model_path=args.model, labels=args.labels, epochs=args.epochs,
                       clip_seconds=args.clip_seconds, sample_rate=args.sample_rate, seed=args.seed,
                       examples=args.examples, workers=args.workers, threads=args.threads)
    except KeyboardInterrupt:
        _interrupted("cluster", args.out or "OUT")


def cmd_predict(args) -> None:
    """Assign new recordings to the clusters of a `uvac cluster` run; see uvac.cluster."""
    from .cluster import predict_folder
    try:
        predict_folder(args.model, args.dir, out=args.out, labels=args.labels, workers=args.workers,
                       threads=args.threads)
    except KeyboardInterrupt:
        _interrupted("predict", args.out or "OUT")


def _add_cluster_commands(sub) -> None:
    from .cluster import DEFAULT_MAX_EPOCHS, DEFAULT_METHOD
    labels_help = ("where labels come from, to score the clusters (accuracy, NMI): subfolder (the first "
                   "folder under DIR), regex:PATTERN (a named group 'label' searched in each file's path "
                   "relative to DIR; files that do not match are rejected), csv:FILE (columns file,label), "
                   "or none (default)")
    common = dict(workers=("--workers", dict(type=int, default=min(2, os.cpu_count() or 1),
                                             help="processes decoding audio and computing features (default: %(default)s)")),
                  threads=("--threads", dict(type=int, default=0,
                                             help="torch, BLAS and OpenMP threads (default 0: the libraries' "
                                                  "defaults; on a machine shared with other jobs, 1 is often faster)")))
    cluster = sub.add_parser(
        "cluster", help="cluster a folder of recordings; writes assignments, metrics, model and an HTML report",
        description="Cluster every clip of a folder of recordings (any format libsndfile reads; long files "
                    "are cut into clips of --clip-seconds) and write OUT/assignments.csv, OUT/metrics.json, "
                    "OUT/model.pt and OUT/report.html. Method settings come from the `methods:` entry of "
                    "the params file (-p, default params.yaml here or in the uvac checkout), except the "
                    f"epoch count: the method's epochs capped at {DEFAULT_MAX_EPOCHS} unless --epochs is given, "
                    "and pre-training epochs capped at the same (the papers' 500 epochs take hours on a CPU). "
                    f"The default method is {DEFAULT_METHOD} (UVAC with autoencoder pre-training and a "
                    "GaussianMixture-initialised prior): with the paper's settings, uvac put every clip into "
                    "one cluster within two epochs on real speech. Features: 16 kHz; clips up to 1 s use "
                    "the paper's STFT grid (20 ms window, 10 ms hop, 128 bins), longer clips a 128-band "
                    "log-mel; linear_vae uses 13 MFCC means and variances. Re-running with the same "
                    "arguments reuses the decoded audio, features, model and t-SNE cached under OUT/cache.")
    cluster.add_argument("dir", metavar="DIR", help="folder of recordings (searched recursively)")
    cluster.add_argument("--k", type=int, required=True, help="number of clusters")
    cluster.add_argument("--method", default=None,
                         help=f"a key of params.yaml methods: {DEFAULT_METHOD} (default), uvac (paper settings), "
                              "uvac_neighbours, uvac_neighbours_consistency, cat_uvac, cat_uvac_l2, cat_uvac_free_bits, cat_uvac_info, "
                              "cat_uvac_info_consistency, cat_uvac_neighbours, cat_uvac_neighbours_cmn, "
                              "cat_uvac_neighbours_stretched, cat_uvac_neighbours_stretched_w60, cat_uvac_neighbours_stretched_w100, kmeans, linear_vae; "
                              "with --model: the model's kind")
    cluster.add_argument("--out", default=None, help="output folder (default: ./uvac-cluster-<DIR name>)")
    cluster.add_argument("--model", default=None, metavar="MODEL.pt",
                         help="use this saved model instead of training (from uvac cluster or a pipeline run)")
    cluster.add_argument("--labels", default="none", help=labels_help)
    cluster.add_argument("--epochs", type=int, default=None,
                         help=f"training epochs (default: the method's, at most {DEFAULT_MAX_EPOCHS}); "
                              "pre-training epochs are capped at the same number")
    cluster.add_argument("--clip-seconds", type=float, default=1.0, help="clip length in seconds (default: 1.0)")
    cluster.add_argument("--sample-rate", type=int, default=16000, help="rate the audio is resampled to (default: 16000)")
    cluster.add_argument("--seed", type=int, default=0, help="seed of training, K-means and t-SNE (default: 0)")
    cluster.add_argument("--examples", type=int, default=3, help="representative clips per cluster in the report (default: 3)")
    for flag, kw in common.values():
        cluster.add_argument(flag, **kw)
    cluster.set_defaults(func=cmd_cluster)

    predict = sub.add_parser(
        "predict", help="assign new recordings to the clusters of a `uvac cluster` run (no training)",
        description="Assign every clip of DIR to the clusters of a trained `uvac cluster` run, with the "
                    "feature settings saved beside its model (cluster.json); writes OUT2/assignments.csv "
                    "and OUT2/metrics.json.")
    predict.add_argument("--model", required=True, metavar="OUT_OR_MODEL",
                         help="the OUT folder of a `uvac cluster` run, or its model.pt")
    predict.add_argument("dir", metavar="DIR", help="folder of new recordings")
    predict.add_argument("--out", default=None, help="output folder (default: ./uvac-predict-<DIR name>)")
    predict.add_argument("--labels", default="none", help=labels_help)
    for flag, kw in common.values():
        predict.add_argument(flag, **kw)
    predict.set_defaults(func=cmd_predict)


LIGHT_COMMANDS = ("validate", "datasets", "data", "provenance")


def _command(argv) -> str | None:
    """The subcommand named on the command line, read without parsing the rest."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-p", "--params")
    pre.add_argument("-c", "--config", action="append")
    pre.add_argument("command", nargs="?")
    return pre.parse_known_args(argv)[0].command


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="uvac", description=__doc__)
    parser.add_argument("-p", "--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-c", "--config", action="append", default=[], metavar="OVERLAY",
                        help="overlay merged on top, like snakemake --configfile (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("validate", help="check params.yaml against the schema").set_defaults(func=cmd_validate)
    sub.add_parser("datasets", help="list the configured datasets").set_defaults(func=cmd_datasets)
    data = sub.add_parser("data", help="build the feature cache of one dataset")
    data.add_argument("dataset")
    data.add_argument("--data-root", default="data")
    data.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    data.set_defaults(func=cmd_data)
    prov = sub.add_parser("provenance", help="print what made a table or figure (params, code, data)")
    prov.add_argument("file", help="a table (.csv/.md), a figure (.png) or a .provenance.json sidecar")
    prov.add_argument("--json", action="store_true", help="the whole record as JSON")
    prov.set_defaults(func=cmd_provenance)
    if _command(argv) not in LIGHT_COMMANDS:  # their help imports torch and scikit-learn (seconds):
        _add_cluster_commands(sub)            # `uvac validate` answers before any of that loads
    args = parser.parse_args(argv)
    log.setup()
    with log.user_errors(args.command):
        args.func(args)


if __name__ == "__main__":
    main()
