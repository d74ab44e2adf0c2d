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
    args = parser.parse_args(argv)
    log.setup()
    with log.user_errors(args.command):
        args.func(args)


if __name__ == "__main__":
    main()
