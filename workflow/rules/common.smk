# Helpers shared by the rules: params validated once, and the slice of params each rule sees.
import json
import re

from uvac import params as uvac_params

uvac_params.validate(config, source="params.yaml (+ --configfile overlays)")
# Mappings in sorted key order: Snakemake compares a rule's params with their order, and
# reordering keys in params.yaml (or an overlay) must not re-run anything.
config.update(json.loads(json.dumps(config, sort_keys=True)))

DATASETS = config["datasets"]
METHODS = config["methods"]
RUN_DIR = "results/runs/{dataset}/{method}/k{k}/seed{seed}"
PRETEXT = "results/runs/{dataset}/pretext_e{epochs}_b{batch_size}_seed{seed}.npz"


def dataset_config(name, keys):
    """The keys of one dataset's config a rule uses: its `params:` (so reruns follow them)."""
    return {k: DATASETS[name][k] for k in keys if k in DATASETS[name]}


RAW_KEYS = ["type", "generator", "source"]
INTERIM_KEYS = RAW_KEYS + ["labels", "sample_rate", "clip_seconds", "long_files", "subset"]
FEATURE_KEYS = ["type", "sample_rate", "features", "normalize", "split"]


def one_of(names):
    """A wildcard constraint matching exactly these names (nothing, for an empty list)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


VAE_METHODS = [m for m, cfg in METHODS.items() if cfg["model"] in uvac_params.VAE_MODELS]
BASELINE_METHODS = [m for m in METHODS if m not in VAE_METHODS]


def train_inputs(w):
    """A run's feature cache, and the pretext embedding where its method reads one (rule pretext)."""
    inputs = {"features": f"data/features/{w.dataset}"}
    method = METHODS[w.method]
    if uvac_params.uses_pretext(method):
        inputs["pretext"] = PRETEXT.format(dataset=w.dataset, seed=w.seed, **uvac_params.pretext_settings(method))
    return inputs


def table_runs(name):
    """(dataset, method, k, seed) of every run a table aggregates."""
    return [(row["dataset"], m, k, s) for row in config["tables"][name]["rows"]
            for k in row["ks"] for m in row["methods"] for s in range(row["n_seeds"])]


def figure_runs():
    """The seed-0 runs the t-SNE and latent-vs-PCA figures draw."""
    return [(f["dataset"], m, f["k"], 0) for kind in ("tsne", "latent_vs_pca")
            for f in config["figures"][kind].values() for m in f["methods"]]


def all_runs():
    runs = [r for name in config["tables"] for r in table_runs(name)] + figure_runs()
    return list(dict.fromkeys(runs))


def run_path(run, leaf):
    dataset, method, k, seed = run
    return RUN_DIR.format(dataset=dataset, method=method, k=k, seed=seed) + f"/{leaf}"


def curve_groups():
    """(dataset, method, k) -> seeds of every trained model the tables name: one curves figure each."""
    groups = {}
    for dataset, method, k, seed in all_runs():
        if method in VAE_METHODS:
            groups.setdefault((dataset, method, k), []).append(seed)
    return groups


CURVES = "results/figures/curves/{dataset}/{method}_k{k}.png"
