"""Reliability (issue 5): generated mutations of the real params.yaml + config/demo.yaml are
refused at start-up by the validation that Snakemake's common.smk and `uvac validate` call, with
a message naming the offending key path: never accepted, never a crash from deep inside torch or
scikit-learn, and never after some work was done.

Each test draws mutations with Hypothesis under one fixed CI profile (derandomized, at most 150
examples, fewer where the space is small; no example database; no deadline: one validation takes
tens of milliseconds on a busy 2-core machine). No health check is suppressed: the strategies sample from precomputed key paths, so
nothing is filtered away and no function-scoped fixture is used inside @given.
"""
from __future__ import annotations

import copy
import subprocess
import sys
import traceback
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from uvac import params as P
from uvac import splits
from conftest import REPO, write_overlay

CI = settings(derandomize=True, max_examples=150, deadline=None, database=None, print_blob=True)


def _merged() -> dict:
    """params.yaml with config/demo.yaml merged key by key, as Snakemake merges --configfile,
    plus a folder dataset and a table of it, so that the folder-only keys are mutated too."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    merged = P.deep_merge(base, yaml.safe_load((REPO / "config" / "demo.yaml").read_text()))
    merged["datasets"]["mine"] = {
        "type": "folder", "source": "/data/my-recordings",
        "labels": {"from": "regex", "pattern": r"^(?P<label>[a-z]+)_", "csv": None},
        "sample_rate": 16000, "clip_seconds": 1.0, "long_files": {"mode": "segment", "max_segments": 4},
        "features": {"kind": "stft", "n_fft": 320, "hop": 160, "n_bins": 128},
        "normalize": "per_clip", "split": {"method": "random", "fractions": [0.8, 0.1, 0.1]}, "subset": None}
    merged["tables"]["mine"] = {"title": "my recordings", "reference": None, "rows": [
        {"dataset": "mine", "paper_dataset": None, "ks": [4, 8], "methods": ["kmeans", "uvac"], "n_seeds": 2}]}
    return merged


BASE = _merged()


def _nodes(value, path=()):
    yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _nodes(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _nodes(child, (*path, i))


NODES = [(path, value) for path, value in _nodes(BASE) if path]
# Keys whose schema allows null beside another type, and that other type.
NULLABLE = {"source": str, "pattern": str, "csv": str, "reference": str, "paper_dataset": str,
            "subset": int, "max_segments": int, "silhouette_sample": int, "fractions": list,
            "gumbel_softmax": dict}
# Keys (and list items) typed integer: a non-integral float is a wrong type there, not in a number key.
INTEGER_KEYS = {"seed", "retries", "gpus", "checkpoint_every", "n_per_class", "sample_rate", "max_segments",
                "subset", "n_fft", "hop", "n_bins", "n_mels", "n_mfcc", "latent_dim", "epochs", "batch_size",
                "kl_warmup_epochs", "pretrain_epochs", "n_init", "n_components", "n_seeds", "k", "n_classes",
                "tsne_max_points", "silhouette_sample", "ks", "val_folds", "test_folds"}


def _name(path) -> str:
    """The nearest key name of a path (a list item takes its list's name)."""
    return next(p for p in reversed(path) if isinstance(p, str))


def _forms(path) -> set[str]:
    """The ways messages spell a key path: schema errors `rows.0.ks`, cross-key checks `rows[0].ks`."""
    dotted = ".".join(str(p) for p in path)
    bracketed = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return {dotted, bracketed}


def _get(params, path):
    for p in path:
        params = params[p]
    return params


def _set(params, path, value) -> dict:
    out = copy.deepcopy(params)
    _get(out, path[:-1])[path[-1]] = value
    return out


def _refused(params) -> list[str]:
    """The validation entry point of common.smk; returns the problem lines of its ParamsError."""
    with pytest.raises(P.ParamsError) as err:
        P.validate(params, source="params.yaml (+ --configfile overlays)")
    assert type(err.value) is P.ParamsError and err.value.__cause__ is None
    frames = [f.filename for f in traceback.extract_tb(err.value.__traceback__)]
    assert not [f for f in frames if "torch" in f or "sklearn" in f], frames
    message = str(err.value)
    assert message.startswith("params.yaml (+ --configfile overlays): invalid parameters:")
    return [line.strip() for line in message.splitlines()[1:]]


def _names_path(lines, path) -> bool:
    return any(line.startswith(f"{form}:") for line in lines for form in _forms(path))


# --- the base itself --------------------------------------------------------------------------------

def test_the_unmutated_base_is_valid_and_covers_every_kind_of_key():
    P.validate(BASE)
    kinds = {type(v) for _, v in NODES}
    assert {dict, list, str, int, float, bool, type(None)} <= kinds
    assert len(NODES) > 400  # every dataset, method, table and figure of both files


def test_validation_imports_neither_torch_nor_sklearn(tmp_path):
    """The start-up check does no work: it loads no model library, whatever it refuses."""
    overlay = write_overlay(tmp_path / "bad.yaml", {"methods": {"uvac": {"epochs": 0}}})
    code = ("import sys\nfrom uvac import params as P\n"
            f"try:\n    P.load({str(REPO / 'params.yaml')!r}, [{str(overlay)!r}])\n"
            "except P.ParamsError as e:\n    print('REFUSED', e)\n"
            "print(sorted(m for m in ('torch', 'sklearn', 'soundfile', 'soxr') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path).stdout
    assert "REFUSED" in out and "methods.uvac.epochs: 0 is less than the minimum of 1" in out
    assert out.strip().endswith("[]"), out


# --- wrong types at random key paths ------------------------------------------------------------

_HALF = st.integers(-1000, 1000).map(lambda i: i + 0.5)  # never an integer, never 2.0 (which is one)
_VALUES = {
    str: st.text(max_size=6), bool: st.booleans(), int: st.integers(-5, 10**6), float: _HALF,
    list: st.lists(st.integers(0, 9), max_size=2), dict: st.fixed_dictionaries({"x": st.integers(0, 9)}),
    type(None): st.none(),
}


def _wrong_types(path, original) -> list[type]:
    """Types a value at this path can never have, whatever the schema's branches decide."""
    kind = type(original)
    wrong = {t for t in _VALUES if t is not kind}
    if kind is float:
        wrong.discard(int)  # an integer is a number
    if kind is int and _name(path) not in INTEGER_KEYS:
        wrong.discard(float)  # an integer held in a number key
    if _name(path) in NULLABLE:
        wrong -= {type(None), NULLABLE[_name(path)]}
    return sorted(wrong, key=lambda t: t.__name__)


@st.composite
def wrong_type(draw):
    path, original = draw(st.sampled_from(NODES))
    kind = draw(st.sampled_from(_wrong_types(path, original)))
    return path, draw(_VALUES[kind])


@CI
@given(wrong_type())
def test_a_wrong_type_anywhere_is_refused_naming_its_key(mutation):
    path, value = mutation
    lines = _refused(_set(BASE, path, value))
    assert _names_path(lines, path), (path, value, lines)


# --- unknown keys --------------------------------------------------------------------------------

DICTS = [((), BASE)] + [(path, v) for path, v in NODES if isinstance(v, dict)]
FREE_NAMES = {("datasets",), ("methods",), ("tables",), ("figures", "tsne"), ("figures", "latent_vs_pca")}
_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)


@st.composite
def unknown_key(draw):
    path, mapping = draw(st.sampled_from(DICTS))
    name = draw(_KEY.filter(lambda k: k not in mapping))
    value = draw(st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none(), _HALF))
    return path, name, value


@settings(CI, max_examples=100)
@given(unknown_key())
def test_an_unknown_key_anywhere_is_refused_naming_where_and_what(mutation):
    path, name, value = mutation
    lines = _refused(_set(BASE, (*path, name), value) if path else {**copy.deepcopy(BASE), name: value})
    if path in FREE_NAMES:  # a new dataset / method / table / figure: named, and not a mapping
        assert _names_path(lines, (*path, name)), (path, name, lines)
    else:
        where = _forms(path) if path else {"(top level)"}
        assert any(line.startswith(f"{w}: unknown key(s) ") and repr(name) in line.split(";")[0]
                   for line in lines for w in where), (path, name, lines)
        # only the stranger is called unknown, never a legitimate sibling
        line = next(line for line in lines if "unknown key(s)" in line)
        assert line.split("unknown key(s) ")[1].split(";")[0] == repr([name]), line


# --- numbers out of range: zero and negative epochs, seeds, counts -------------------------------

COUNT_KEYS = {"epochs": 1, "n_seeds": 1, "batch_size": 1, "latent_dim": 1, "n_init": 1, "checkpoint_every": 1,
              "retries": 1, "n_per_class": 2, "pretrain_epochs": 0, "kl_warmup_epochs": 0, "k": 2, "ks": 2}
COUNTS = [(path, COUNT_KEYS[_name(path)]) for path, v in NODES
          if _name(path) in COUNT_KEYS and type(v) is int]


@st.composite
def below_minimum(draw):
    path, minimum = draw(st.sampled_from(COUNTS))
    return path, draw(st.integers(min_value=-10**9, max_value=minimum - 1))


@settings(CI, max_examples=60)
@given(below_minimum())
def test_zero_or_negative_epochs_and_counts_are_refused(mutation):
    path, value = mutation
    lines = _refused(_set(BASE, path, value))
    assert _names_path(lines, path), (path, value, lines)
    assert any(f"{value} is less than the minimum" in line for line in lines), lines


def test_every_epoch_key_is_among_the_mutated_paths():
    epochs = {path for path, _ in COUNTS if path[-1] == "epochs"}
    vae = {name for name, m in BASE["methods"].items() if m["model"] in P.VAE_MODELS}
    assert {path[1] for path in epochs} == vae and len(vae) >= 5


@settings(CI, max_examples=60)
@given(st.sampled_from([path for path, v in NODES if isinstance(v, float)]),
       st.sampled_from([float("nan"), float("inf"), float("-inf")]))
def test_nan_and_infinity_are_refused_where_a_number_is_expected(path, value):
    lines = _refused(_set(BASE, path, value))
    assert _names_path(lines, path), (path, value, lines)


# --- empty lists ------------------------------------------------------------------------------

# val_folds may be empty (no validation folds); every other list must hold something.
LISTS = [path for path, v in NODES if isinstance(v, list) and v and path[-1] != "val_folds"]


def test_the_lists_cover_methods_ks_rows_and_dataset_lists():
    names = {_name(p) for p in LISTS}
    assert {"methods", "ks", "rows", "datasets", "fractions", "test_folds", "taus", "logvar_clamp"} <= names


@CI
@given(st.sampled_from(LISTS))
def test_an_empty_list_is_refused_naming_its_key(path):
    lines = _refused(_set(BASE, path, []))
    assert _names_path(lines, path), (path, lines)


@pytest.mark.parametrize("path", [("datasets",), ("methods",), ("figures", "gumbel_softmax", "taus")])
def test_an_empty_mapping_of_datasets_or_methods_is_refused(path):
    lines = _refused(_set(BASE, path, {} if path[-1] != "taus" else []))
    assert _names_path(lines, path), lines


# --- K larger than the test set -----------------------------------------------------------------

SYNTH_SITES = ([("tables", t, "rows", i, "ks") for t, spec in BASE["tables"].items()
                for i, row in enumerate(spec["rows"]) if row["dataset"].startswith("synth_")]
               + [("figures", kind, name, "k") for kind in ("tsne", "latent_vs_pca")
                  for name in BASE["figures"][kind]])


def _expected_test_clips(ds: dict) -> int:
    """Worked out here from the generators' facts, independently of uvac.params: 10 classes of
    n_per_class files; a random split tests max(1, round(f * files)) files; 30 s music tracks."""
    files = 10 * ds["generator"]["n_per_class"]
    if ds["split"]["method"] == "random":
        files = max(1, round(ds["split"]["fractions"][2] * files))
    per_file = 1
    if ds["long_files"]["mode"] == "segment":
        per_file = min(int(30.0 // ds["clip_seconds"]), ds["long_files"]["max_segments"] or 10**9)
    return files * per_file


@st.composite
def k_against_test_set(draw):
    """A table row's ks or a figure's k against a resized synthetic dataset: over its test set
    (refused) or within it (accepted); every other K on that dataset is set to 2."""
    site = draw(st.sampled_from(SYNTH_SITES))
    params = copy.deepcopy(BASE)
    spec = _get(params, site[:-1])
    dataset = params["datasets"][spec["dataset"]]
    dataset["generator"]["n_per_class"] = draw(st.integers(2, 40))
    if dataset["split"]["method"] == "random":
        test = draw(st.sampled_from([0.05, 0.1, 0.2, 0.25]))
        dataset["split"]["fractions"] = [round(1 - 2 * test, 2), test, test]
    n_test = _expected_test_clips(dataset)
    over = draw(st.booleans())
    k = draw(st.integers(n_test + 1, n_test + 500)) if over else draw(st.integers(2, max(2, n_test)))
    for row in (r for table in params["tables"].values() for r in table["rows"]):
        if row["dataset"] == spec["dataset"]:
            row["ks"] = [2]
    for fig in (f for kind in ("tsne", "latent_vs_pca") for f in params["figures"][kind].values()):
        if fig["dataset"] == spec["dataset"]:
            fig["k"] = 2
    if site[-1] == "ks":
        spec["ks"] = [k]
    else:
        spec["k"] = k
    return params, site, spec["dataset"], k, n_test, over


@settings(CI, max_examples=100)
@given(k_against_test_set())
def test_k_larger_than_the_test_set_is_refused_and_k_up_to_it_accepted(case):
    params, site, dataset, k, n_test, over = case
    if n_test < 2:
        return  # no K >= 2 fits (20 files, 5 % test): not this test's concern
    if not over:
        P.validate(params)  # K <= test clips: accepted (the check is not over-eager)
        return
    lines = _refused(params)
    assert _names_path(lines, site), (site, lines)
    line = next(line for line in lines if any(line.startswith(f"{f}:") for f in _forms(site)))
    assert f"K = {k} is more than the {n_test} test clips of dataset {dataset!r}" in line


@pytest.mark.parametrize("n_files, fraction", [(2, 0.2), (20, 0.1), (97, 0.1), (600, 0.1), (35, 0.25)])
def test_the_test_set_bound_is_what_the_splitter_makes(n_files, fraction):
    """The validator's count of test clips is the real split's, not a guess."""
    ds = copy.deepcopy(BASE["datasets"]["synth_digits"])
    ds["generator"]["n_per_class"] = n_files
    ds["split"]["fractions"] = [1 - 2 * fraction, fraction, fraction]
    files = pd.DataFrame({"file": [f"{i}.wav" for i in range(10 * n_files)],
                          "label": [str(i % 10) for i in range(10 * n_files)], "speaker": None, "fold": None})
    real = int((splits.assign(files, ds["split"], seed=0) == "test").sum())
    assert P.max_test_clips(ds)[0] == real


def test_k_of_a_known_dataset_and_of_official_folds():
    paper = yaml.safe_load((REPO / "params.yaml").read_text())
    bad = copy.deepcopy(paper)
    bad["tables"]["table2"]["rows"][1]["ks"] = [10, 121]  # tau2019: 1200-file subset, 10 % test
    bad["datasets"]["esc10"]["split"]["test_folds"] = [5, 6]
    bad["datasets"]["gtzan"]["split"] = {"method": "folds", "val_folds": [], "test_folds": [1]}
    lines = _refused(bad)
    assert any(line.startswith("tables.table2.rows[1].ks: K = 121 is more than the 120 test clips of dataset "
                               "'tau2019'") and "subset 1200" in line for line in lines), lines
    assert "datasets.esc10.split.test_folds: no fold [6] in esc10 (its folds are 1..5)" in lines
    assert any(line.startswith("datasets.gtzan.split.method: folds, but a gtzan dataset has no official folds")
               for line in lines), lines
    ok = copy.deepcopy(paper)
    ok["tables"]["table2"]["rows"][1]["ks"] = [10, 120]
    P.validate(ok)


def test_check_k_for_folder_datasets_names_the_keys():
    P.check_k(5, 5, "mine")
    with pytest.raises(P.ParamsError, match=r"K = 6 \(tables\.\*\.rows\[\*\]\.ks or figures\.\*\.\*\.k for "
                                            r"dataset 'mine'\) is more than the 5 clips of its test split"):
        P.check_k(6, 5, "mine")


# --- end to end: the CLI and a Snakemake dry run stop before any job --------------------------------

BAD_K = {"tables": {"table2": {"rows": [
    {"dataset": "synth_scenes", "paper_dataset": "tau2019", "ks": [10, 31],
     "methods": ["labels", "kmeans", "uvac", "cat_uvac_l2"], "n_seeds": 1}]}}}
BAD_K_LINE = "tables.table2.rows[0].ks: K = 31 is more than the 30 test clips of dataset 'synth_scenes'"


def test_cli_validate_refuses_the_mutation_without_a_traceback(tmp_path):
    overlay = write_overlay(tmp_path / "bad.yaml", BAD_K)
    cli = subprocess.run([sys.executable, "-m", "uvac.cli", "-p", str(REPO / "params.yaml"),
                          "-c", str(REPO / "config" / "demo.yaml"), "-c", str(overlay), "validate"],
                         capture_output=True, text=True)
    assert cli.returncode == 1 and BAD_K_LINE in cli.stderr and "Traceback" not in cli.stderr


@pytest.mark.slow
def test_snakemake_dry_run_stops_at_start_up_naming_the_key(tmp_path, workflow_copy):
    overlay = write_overlay(tmp_path / "bad.yaml", BAD_K)
    smk = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1",
                          "--configfile", "config/demo.yaml", str(overlay)],
                         cwd=workflow_copy, capture_output=True, text=True)
    out = smk.stdout + smk.stderr
    assert smk.returncode != 0
    assert BAD_K_LINE in out
    assert "Job stats" not in out and "rule raw" not in out and "localrule" not in out, out[-3000:]
    made = {p.name for p in Path(workflow_copy).iterdir()}
    assert not made & {"data", "results", "logs"}, made
    # with K = 30 the same overlay is valid: it was the K, not the set-up, that stopped the run
    good = write_overlay(tmp_path / "good.yaml", {"tables": {"table2": {"rows": [
        {**BAD_K["tables"]["table2"]["rows"][0], "ks": [10, 30]}]}}})
    P.load(workflow_copy / "params.yaml", [workflow_copy / "config" / "demo.yaml", good])
