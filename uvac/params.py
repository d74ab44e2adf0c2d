"""Load params.yaml (plus overlays) and validate it against the schema before any work starts."""
from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml


VAE_MODELS = ("uvac", "cat_uvac", "linear_vae")  # trained by the train rule; the rest are baselines


class ParamsError(ValueError):
    """params.yaml (or an overlay) is not what the pipeline expects; the message names the key."""


def schema() -> dict:
    text = resources.files("uvac").joinpath("schemas/params.schema.yaml").read_text()
    return yaml.safe_load(text)


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
    if v in ("additionalProperties", "unevaluatedProperties"):
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = sorted(error.schema.get("properties", {}))
        return f"{where}: unknown key(s) {unknown}; allowed here: {allowed}"
    if v == "enum":
        return f"{where}: expected one of {error.validator_value}, got {error.instance!r}"
    if v == "type":
        return f"{where}: expected {error.validator_value}, got {type(error.instance).__name__} {error.instance!r}"
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
    validator = jsonschema.Draft202012Validator(schema())
    problems = sorted({_describe(e) for e in _leaf_errors(validator.iter_errors(params))})
    if not problems:
        problems = _semantic_problems(params)
    if problems:
        raise ParamsError(f"{source}: invalid parameters:\n  " + "\n  ".join(problems))


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
        if split["method"] == "folds" and set(split["val_folds"]) & set(split["test_folds"]):
            problems.append(f"datasets.{name}.split: val_folds and test_folds overlap")
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
            problems += _run_problems(params, f"tables.{name}.rows[{i}]", row["dataset"], row["methods"])
    for kind in ("tsne", "latent_vs_pca"):
        for name, fig in params["figures"][kind].items():
            problems += _run_problems(params, f"figures.{kind}.{name}", fig["dataset"], fig["methods"])
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


def digest(value: Any) -> str:
    """Stable short hash of a JSON-able value (resolved params, a dataset's config)."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
