"""The papers' tables from scored runs: mean ± std over seeds, the space of each metric, the
dataset actually used, and the published value beside ours (uvac/published.csv).

    results/<table>.csv   one row per dataset × K × method × space
    results/<table>.md    the same, readable, with what each method and dataset is
"""
from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from . import provenance
from .evaluation import SPACES
from .io import atomic_path, write_json

# (column, key in scores.json, scale): accuracy in %, CHI in thousands, as the papers print them.
METRICS = [("accuracy", "accuracy", 100.0), ("nmi", "nmi", 1.0), ("silhouette", "silhouette", 1.0),
           ("dbi", "dbi", 1.0), ("chi_e3", "chi", 1e-3)]
HEADERS = {"accuracy": "Accuracy (%) ↑", "nmi": "NMI ↑", "silhouette": "Silhouette ↑", "dbi": "DBI ↓",
           "chi_e3": "CHI ×10³ ↑"}


def published() -> pd.DataFrame:
    """The papers' numbers, keyed by (reference, paper_dataset, k, method)."""
    with resources.files("uvac").joinpath("published.csv").open() as f:
        return pd.read_csv(f)


def run_dir(root: Path | str, dataset: str, method: str, k: int, seed: int) -> Path:
    return Path(root) / dataset / method / f"k{k}" / f"seed{seed}"


def _stats(values: list) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1) of the defined values; std None for one run."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return float(np.mean(vals)), (float(np.std(vals, ddof=1)) if len(vals) > 1 else None)


def build_table(name: str, spec: dict, methods: dict, datasets: dict, runs_root: Path | str) -> pd.DataFrame:
    """Aggregate every run a table spec names (rows × ks × methods × seeds) into one DataFrame."""
    ref = published()
    ref = ref[ref["reference"] == spec["reference"]] if spec["reference"] else ref.iloc[0:0]
    if spec["reference"] and ref.empty:
        raise ValueError(f"tables.{name}.reference: {spec['reference']!r} is not a reference of uvac/published.csv "
                         f"(known: {sorted(published()['reference'].unique())})")
    out = []
    for row in spec["rows"]:
        ds = row["dataset"]
        kind = datasets[ds]["type"]
        for k in row["ks"]:
            for method in row["methods"]:
                model = methods[method]["model"]
                runs = []
                for seed in range(row["n_seeds"]):
                    path = run_dir(runs_root, ds, method, k, seed) / "scores.json"
                    if not path.exists():
                        raise FileNotFoundError(f"{path}: missing; evaluate the run first (rule evaluate)")
                    runs.append(json.loads(path.read_text()))
                if model == "labels" and runs[0]["n_classes"] != k:
                    continue  # "None (labels)" is a K = number-of-classes row only
                match = ref[(ref["paper_dataset"] == row["paper_dataset"]) & (ref["k"] == k) & (ref["method"] == method)]
                for space in SPACES[model]:
                    rec = {"table": name, "paper_dataset": row["paper_dataset"], "dataset": ds,
                           "data": "synthetic stand-in" if kind.startswith("synth_") else kind,
                           "k": k, "method": method, "model": model, "space": space, "n_runs": len(runs),
                           "collapsed_runs": sum(r["collapsed"] for r in runs),
                           "clusters_used": float(np.mean([r["clusters_used"] for r in runs])),
                           "n_test": runs[0]["n_test"]}
                    for col, key, scale in METRICS:
                        source = runs if key in ("accuracy", "nmi") else [r["spaces"][space] for r in runs]
                        mean, std = _stats([None if s[key] is None else s[key] * scale for s in source])
                        rec[f"{col}_mean"], rec[f"{col}_std"] = mean, std
                        value = match[col].iloc[0] if len(match) else math.nan
                        rec[f"{col}_published"] = None if pd.isna(value) else float(value)
                    sample = {r["spaces"][space]["silhouette_n"] for r in runs}
                    rec["silhouette_n"] = max((s for s in sample if s is not None), default=None)
                    out.append(rec)
    return pd.DataFrame(out)


def _cell(mean, std, published, fmt: str) -> str:
    if mean is None or pd.isna(mean):
        text = "—"
    else:
        text = f"{mean:{fmt}}" + ("" if std is None or pd.isna(std) else f" ± {std:{fmt}}")
    if published is not None and not pd.isna(published):
        text += f" ({published:{fmt}})"
    return text


def to_markdown(table: pd.DataFrame, spec: dict, methods: dict) -> str:
    """A readable rendering: ours ± std over seeds, the published value in parentheses."""
    lines = [f"# {spec['title']}", ""]
    for (ds, paper_ds, data), _ in table.groupby(["dataset", "paper_dataset", "data"], sort=False, dropna=False):
        if data == "synthetic stand-in":
            lines.append(f"- **{ds}** is a synthetic stand-in for {paper_ds}: published values are for {paper_ds} "
                         "and are not comparable.")
        elif isinstance(paper_ds, str) and paper_ds != ds:
            lines.append(f"- **{ds}** used in place of {paper_ds}.")
    lines += ["- Each cell: ours, mean ± sample std over the runs (seeds 0..n−1); the published value in "
              "parentheses. Accuracy and NMI are blank where K differs from the number of classes; "
              "“—” means undefined (for example a collapsed run: one cluster in use).",
              "- space: where silhouette, DBI and CHI are measured — input (flattened features), z (latent "
              "means), q(y|x) (cluster posterior), pca (PCA projection).", ""]
    cols = ["Dataset", "K", "Method", "Space", "Runs", *HEADERS.values(), "Clusters used", "Collapsed"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = [r["dataset"], str(r["k"]), r["method"], r["space"], str(r["n_runs"])]
        for col, _, _ in METRICS:
            fmt = {"accuracy": ".2f", "chi_e3": ".3g"}.get(col, ".3f")  # CHI spans 1e-3 to 1e2 across spaces
            cells.append(_cell(r[f"{col}_mean"], r[f"{col}_std"], r[f"{col}_published"], fmt))
        cells += [f"{r['clusters_used']:.1f} of {r['k']}", str(r["collapsed_runs"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Methods (params.yaml `methods:`):", ""]
    for method in dict.fromkeys(table["method"]):
        cfg = {k: v for k, v in methods[method].items() if k != "model"}
        lines.append(f"- `{method}`: model {methods[method]['model']}"
                     + (", " + ", ".join(f"{k} {v}" for k, v in cfg.items()) if cfg else ""))
    sampled = table["silhouette_n"].dropna()
    if len(sampled) and (sampled < table.loc[sampled.index, "n_test"]).any():
        lines += ["", f"Silhouette on a seeded sample of {int(sampled.min())} test clips (evaluate.silhouette_sample)."]
    return "\n".join(lines) + "\n"


def summary_metrics(table: pd.DataFrame) -> dict:
    """Nested means for `dvc metrics show`: dataset → k<K> → method[/space] → metric."""
    out: dict = {}
    for _, r in table.iterrows():
        key = r["method"] if r["space"] == SPACES[r["model"]][0] else f"{r['method']}/{r['space']}"
        cell = out.setdefault(r["dataset"], {}).setdefault(f"k{r['k']}", {}).setdefault(key, {})
        for col, _, _ in METRICS:
            value = r[f"{col}_mean"]
            if value is not None and not pd.isna(value):
                cell[col] = round(float(value), 4)
    return out


def write_table(name: str, spec: dict, methods: dict, datasets: dict, runs_root: Path | str,
                out_csv: Path | str, out_md: Path | str, out_metrics: Path | str, provenance_params: dict,
                features_root: Path | str = "data/features") -> pd.DataFrame:
    """results/<table>.csv, .md, the metrics summary for DVC and the provenance sidecar."""
    table = build_table(name, spec, methods, datasets, runs_root)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out_md) as tmp:
        tmp.write_text(to_markdown(table, spec, methods))
    write_json(out_metrics, summary_metrics(table))
    runs = [run_dir(runs_root, row["dataset"], m, k, s) for row in spec["rows"] for k in row["ks"]
            for m in row["methods"] for s in range(row["n_seeds"])]
    record = provenance.for_runs(provenance_params, runs,
                                 [Path(features_root) / ds for ds in dict.fromkeys(r["dataset"] for r in spec["rows"])])
    provenance.write_sidecar(out_csv, record)
    return table
