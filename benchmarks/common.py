"""Shared by the benchmark scripts: where reports go and how they are written."""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from uvac.io import write_json
from uvac.params import load as load_params

OUT_DIR = Path("results/benchmarks")


def machine() -> dict:
    """What the figures depend on: cores, load at the time, Python."""
    return {"cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "platform": platform.platform()}


def write_report(path: str | Path, report: dict) -> None:
    """Write a benchmark's JSON atomically (with the machine it ran on) and say where."""
    write_json(path, {**report, "machine": machine()})
    print(f"wrote {path}")


def load_run_model(run_dir: Path, input_shape, kinds: tuple[str, ...] | None = None):
    """The trained model of a run directory (run_dir/model.pt), refused with the path named unless
    it is there and of one of `kinds` (None: any model kind). Imports torch only when called."""
    from uvac.runs import ESTIMATORS
    from uvac.training import load_state

    kinds = kinds or tuple(ESTIMATORS)
    model_file = Path(run_dir) / "model.pt"
    if not model_file.is_file():
        raise SystemExit(f"{model_file}: not found; give directories of trained runs ({', '.join(kinds)})")
    kind = load_state(model_file)["meta"]["kind"]
    if kind not in kinds:
        raise SystemExit(f"{model_file}: a {kind} model; this needs one of {', '.join(kinds)}")
    return ESTIMATORS[kind].load(model_file, input_shape=input_shape)


def add_method_arguments(ap: argparse.ArgumentParser, example: str) -> None:
    """The arguments of a trial of one params.yaml method on one feature cache."""
    ap.add_argument("features", type=Path, help="a feature cache with train and test splits, e.g. data/features/fsdd")
    ap.add_argument("method", help=f"a method of params.yaml, e.g. {example}")
    ap.add_argument("--configfile", nargs="*", default=[], help="params overlays, as for snakemake")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="method settings to override (JSON values)")


def method_settings(args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """(params, the method's settings with --set applied, those --set values) for add_method_arguments' args."""
    params = load_params("params.yaml", args.configfile)
    if args.method not in params["methods"]:
        raise SystemExit(f"method {args.method!r} is not in params.yaml; expected one of {sorted(params['methods'])}")
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    return params, {**params["methods"][args.method], **overrides}, overrides


def add_pretext_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--pretext", type=Path, metavar="FILE.npz",
                    help="the training clips' pretext embedding as rule pretext writes it (results/runs/<dataset>/"
                         "pretext_e<E>_b<B>_seed<s>.npz): read from FILE, or made there first when it is missing")


def kept_pretext(args: argparse.Namespace, method: dict, seed: int, train: dict, clip_ids):
    """The embedding of --pretext for the method's pretext settings and this seed: made there by
    uvac.runs.pretext_run (one thread) when the file is missing, then read back and checked against the
    training clips (uvac.runs.load_pretext). None without --pretext: the fit makes its own."""
    from uvac.params import pretext_settings, uses_pretext
    from uvac.runs import load_pretext, pretext_run

    if args.pretext is None:
        return None
    if not uses_pretext(method):
        raise SystemExit(f"--pretext: method {args.method!r} reads no pretext embedding (neighbour_space "
                         f"{method.get('neighbour_space')!r})")
    if not args.pretext.exists():
        pretext_run(args.features, seed, {**train, "threads": 1}, args.pretext, **pretext_settings(method))
    return load_pretext(args.pretext, clip_ids, seed=seed, **pretext_settings(method))
