"""Load params.yaml (plus overlays) and validate it against the schema before any work starts."""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

from .datasets.sources import SOURCES


VAE_MODELS = ("uvac", "cat_uvac", "linear_vae")  # trained by the train rule; the rest are baselines
PRETEXT_SPACE = "pretext"  # the neighbour_space of uvac.pretext's embedding
PRETEXT_BATCH_SIZE = 256  # clips per step of its contrastive encoder, where a method states no pretext_batch_size


def uses_pretext(method: dict) -> bool:
    """Whether a method variant reads the pretext embedding of its training clips: for its neighbours or
    its cluster initialisation (uvac.training.train). Here, not beside the encoder, so that the workflow
    can ask without importing torch."""
    return method.get("neighbour_space") == PRETEXT_SPACE and bool(
        method.get("neighbour_weight") or method.get("cluster_init_epochs"))


def pretext_settings(method: dict) -> dict:
    """What a method's pretext embedding depends on besides the training clips, the seed and the device:
    the encoder's epochs and batch size (rule pretext's file name, uvac.runs.load_pretext's check)."""
    return {"epochs": method["pretext_epochs"], "batch_size": method.get("pretext_batch_size", PRETEXT_BATCH_SIZE)}


# What validation knows of each dataset's size before any data is read, to refuse a K larger
# than its test set (a folder dataset's size is only known once read: see check_k).
SYNTH = ("synth_digits", "synth_scenes", "synth_music")
SYNTH_CLASSES = 10  # every synthetic generator writes n_per_class files for each of 10 classes
# Files of each downloadable dataset, as published (an upper bound: rejected files only lower it).
KNOWN_FILES = {name: source.n_files for name, source in SOURCES.items()}
# The longest recording of a type, where it is known (segment mode cuts it into clips):
# synth_music writes 30 s tracks, synth_scenes at most 4 s, GTZAN's tracks are 30 s (+ <1 s).
MAX_SECONDS = {"synth_music": 30.0, "synth_scenes": 4.0, "gtzan": 31.0}
# Official folds: their number, and whether they hold equal shares of the files (ESC's do).
FOLDS = {"urbansound8k": (10, False), "esc50": (5, True), "esc10": (5, True)}


class ParamsError(ValueError):
    """params.yaml (or an overlay) is not what the pipeline expects; the message names the key."""


def schema() -> dict:
    return copy.deepcopy(_schema())


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    text = resources.files("uvac").joinpath("schemas/params.schema.yaml").read_text()
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    """Built once per process: Snakemake, the CLI and tests validate many times."""
    return jsonschema.Draft202012Validator(_schema())


def deep_merge(base: dict, overlay: dict) -> dict:
    """Overlay dicts recursively (lists and scalars replace), as Snakemake merges --configfile."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def load(path: str | Path = "params.yaml", overlays: Iterable[str | Path] = ()) -> dict:
    """Read params.yaml, apply overlays in order, validate, and return the resolved dict."""
    params = _read_yaml(Path(path))
    for overlay in overlays:
        params = deep_merge(params, _read_yaml(Path(overlay)))
    validate(params, source=" + ".join(str(p) for p in [path, *overlays]))
    return params


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    """One line per problem: the key path, then what was expected and what was found."""
    where = _key_path(error)
    v = error.validator
    if v == "required":
        missing = error.message.split("'")[1]
        where = f"{where}.{missing}" if where != "(top level)" else missing
        return f"{where}: missing (every key is required; see params.yaml for an example)"
    if v == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = sorted(error.schema.get("properties", {}))
        return f"{where}: unknown key(s) {unknown}; allowed here: {allowed}"
    if v == "unevaluatedProperties":
        # The keys a subschema (if/then) accepted are not in this schema's own `properties`:
        # name only the keys jsonschema reports as unexpected, and allow the ones it evaluated.
        said = re.search(r"\((.*) (?:was|were) unexpected\)", error.message)
        unknown = sorted(re.findall(r"'((?:[^'\\]|\\.)*)'", said.group(1))) if said else []
        if not unknown or not set(unknown) <= set(error.instance):
            unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = sorted(set(error.instance) - set(unknown) | set(error.schema.get("properties", {})))
        return f"{where}: unknown key(s) {unknown}; allowed here: {allowed}"
    if v == "enum":
        return f"{where}: expected one of {error.validator_value}, got {error.instance!r}"
    if v == "type":
        return f"{where}: expected {error.validator_value}, got {type(error.instance).__name__} {error.instance!r}"
    if v == "const":  # a value another key requires: the schema's description says which and why
        why = error.schema.get("description")
        return f"{where}: expected {error.validator_value!r}, got {error.instance!r}" + (f" ({why})" if why else "")
    return f"{where}: {error.message}"


def _leaf_errors(errors: Iterable[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    out = []
    for err in errors:
        if err.context:
            out.extend(_leaf_errors(err.context))
        else:
            out.append(err)
    return out


def validate(params: dict, source: str = "params") -> None:
    """Raise ParamsError listing every schema violation and every cross-key inconsistency."""
    problems = _non_finite(params, "")
    problems += sorted({_describe(e) for e in _leaf_errors(_validator().iter_errors(params))})
    if not problems:
        problems = _semantic_problems(params)
    if problems:
        raise ParamsError(f"{source}: invalid parameters:\n  " + "\n  ".join(problems))


def _non_finite(value: Any, where: str) -> list[str]:
    """NaN and infinities pass JSON Schema's type and most of its bounds (`.nan`, `.inf` in YAML)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where or '(top level)'}: expected a finite number, got {value!r}"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite(v, f"{where}.{i}")]
    return []


def _semantic_problems(params: dict) -> list[str]:
    """Checks JSON Schema cannot express: fractions sum to 1, referenced datasets exist."""
    problems = []
    for name, ds in params["datasets"].items():
        split = ds["split"]
        if split["method"] in ("random", "speaker"):
            total = sum(split["fractions"])
            if abs(total - 1.0) > 1e-6:
                problems.append(f"datasets.{name}.split.fractions: expected train, val, test fractions summing to 1, got {total:g}")
            if split["fractions"][2] <= 0:
                problems.append(f"datasets.{name}.split.fractions: the test fraction must be > 0 (metrics are computed on test)")
            if split["fractions"][0] <= 0:
                problems.append(f"datasets.{name}.split.fractions: the train fraction must be > 0 (models are fitted on train)")
        if split["method"] == "folds" and set(split["val_folds"]) & set(split["test_folds"]):
            problems.append(f"datasets.{name}.split: val_folds and test_folds overlap")
        if split["method"] == "folds" and ds["type"] not in FOLDS:
            problems.append(f"datasets.{name}.split.method: folds, but a {ds['type']} dataset has no official "
                            f"folds (only {sorted(FOLDS)} have); use random, speaker or all")
        elif split["method"] == "folds":
            n_folds = FOLDS[ds["type"]][0]
            for key in ("val_folds", "test_folds"):
                unknown = sorted(set(split[key]) - set(range(1, n_folds + 1)))
                if unknown:
                    problems.append(f"datasets.{name}.split.{key}: no fold {unknown} in {ds['type']} "
                                    f"(its folds are 1..{n_folds})")
        if ds["features"]["kind"] != "mfcc_stats" and ds["features"]["n_fft"] > ds["sample_rate"] * ds["clip_seconds"]:
            problems.append(f"datasets.{name}.features.n_fft: longer than the clip ({ds['clip_seconds']} s)")
        synthetic = ds["type"].startswith("synth_")
        for key, allowed in (("generator", synthetic), ("source", not synthetic), ("labels", ds["type"] == "folder")):
            if key in ds and not allowed:
                problems.append(f"datasets.{name}.{key}: not a key of a {ds['type']} dataset")
        if ds["type"] == "folder":
            lab = ds["labels"]
            if lab["from"] == "regex" and not lab["pattern"]:
                problems.append(f"datasets.{name}.labels.pattern: required when labels.from is regex")
            if lab["from"] == "csv" and not lab["csv"]:
                problems.append(f"datasets.{name}.labels.csv: required when labels.from is csv")
    for name, table in params["tables"].items():
        for i, row in enumerate(table["rows"]):
            where = f"tables.{name}.rows[{i}]"
            problems += _run_problems(params, where, row["dataset"], row["methods"])
            problems += _k_problems(params, f"{where}.ks", row["dataset"], row["ks"])
    for kind in ("tsne", "latent_vs_pca"):
        for name, fig in params["figures"][kind].items():
            where = f"figures.{kind}.{name}"
            problems += _run_problems(params, where, fig["dataset"], fig["methods"])
            problems += _k_problems(params, f"{where}.k", fig["dataset"], [fig["k"]])
    for name, m in params["methods"].items():
        if "logvar_clamp" not in m:
            continue
        lo, hi = m["logvar_clamp"]
        if not lo < hi:
            problems.append(f"methods.{name}.logvar_clamp: expected [min, max] with min < max, got {m['logvar_clamp']}")
    for name in params["build"]["datasets"]:
        if name not in params["datasets"]:
            problems.append(f"build.datasets: {name!r} is not a key of datasets (known: {sorted(params['datasets'])})")
    return problems


def _run_problems(params: dict, where: str, dataset: str, methods: list[str]) -> list[str]:
    """A table row or figure names a known dataset and methods that can run on its features."""
    if dataset not in params["datasets"]:
        return [f"{where}.dataset: {dataset!r} is not a key of datasets (known: {sorted(params['datasets'])})"]
    problems = []
    kind = params["datasets"][dataset]["features"]["kind"]
    for m in methods:
        if m not in params["methods"]:
            problems.append(f"{where}.methods: {m!r} is not a key of methods (known: {sorted(params['methods'])})")
            continue
        model = params["methods"][m]["model"]
        if model in VAE_MODELS and (model == "linear_vae") != (kind == "mfcc_stats"):
            problems.append(f"{where}.methods: {m!r} ({model}) cannot train on {dataset!r} ({kind} features); "
                            "linear_vae takes mfcc_stats, uvac and cat_uvac spectrograms")
    return problems


def max_test_clips(ds: dict) -> tuple[int, str] | None:
    """The most test clips a dataset config can yield, and how that number follows from params;
    None where the size is unknown before the data is read (a folder dataset, or segments of
    recordings of unknown length)."""
    kind = ds["type"]
    if kind in SYNTH:
        files = SYNTH_CLASSES * ds["generator"]["n_per_class"]
        how = f"{SYNTH_CLASSES} classes x generator.n_per_class {ds['generator']['n_per_class']} = {files} files"
    elif kind in KNOWN_FILES:
        files = KNOWN_FILES[kind]
        how = f"{kind} has at most {files} files"
    else:
        return None
    if ds["subset"] is not None and ds["subset"] < files:
        files = ds["subset"]
        how += f", subset {files}"
    split = ds["split"]
    if split["method"] == "random":
        test = max(1, round(split["fractions"][2] * files))  # as uvac.splits does
        how += f", test fraction {split['fractions'][2]:g} -> {test} files"
    elif split["method"] == "folds" and FOLDS.get(kind, (0, False))[1]:
        n_folds = FOLDS[kind][0]
        test = files // n_folds * len(set(split["test_folds"]) & set(range(1, n_folds + 1)))
        how += f", {len(split['test_folds'])} of {n_folds} equal folds -> {test} files"
    else:  # all (test = every clip), speaker or uneven folds (at most every file)
        test = files
    lf = ds["long_files"]
    if lf["mode"] == "segment":
        longest = MAX_SECONDS.get(kind)
        per_file = None if longest is None else max(1, math.floor(longest / ds["clip_seconds"]))
        if lf["max_segments"] is not None:
            per_file = lf["max_segments"] if per_file is None else min(per_file, lf["max_segments"])
        if per_file is None:
            return None
        test *= per_file
        how += f" x at most {per_file} segments"
    return test, how


def _k_problems(params: dict, where: str, dataset: str, ks: list[int]) -> list[str]:
    """A K no larger than the test set it is scored on (where params tell the test set's size)."""
    if dataset not in params["datasets"]:
        return []  # reported by _run_problems
    bound = max_test_clips(params["datasets"][dataset])
    if bound is None:
        return []  # checked where the features are read: check_k
    n_test, how = bound
    return [f"{where}: K = {k} is more than the {n_test} test clips of dataset {dataset!r} ({how})"
            for k in ks if k > n_test]


def check_k(k: int, n_test: int, dataset: str) -> None:
    """The same check once the test split is read (folder datasets): call before any fitting."""
    if k > n_test:
        raise ParamsError(f"K = {k} (tables.*.rows[*].ks or figures.*.*.k for dataset {dataset!r}) is more "
                          f"than the {n_test} clips of its test split; lower K or add recordings")


def digest(value: Any) -> str:
    """Stable short hash of a JSON-able value (resolved params, a dataset's config)."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
