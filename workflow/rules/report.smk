# Tables and figures (DESIGN.md §6), each with its provenance sidecar (DESIGN.md §7).


def table_datasets(name):
    return list(dict.fromkeys(row["dataset"] for row in config["tables"][name]["rows"]))


def table_methods(name):
    return list(dict.fromkeys(m for row in config["tables"][name]["rows"] for m in row["methods"]))


rule table:
    input:
        scores=lambda w: [run_path(r, "scores.json") for r in table_runs(w.table)],
        features=lambda w: [f"data/features/{d}" for d in table_datasets(w.table)],
    output:
        csv="results/{table}.csv",
        md="results/{table}.md",
        provenance="results/{table}.provenance.json",
        metrics="results/metrics/{table}.json",
    params:
        spec=lambda w: config["tables"][w.table],
        methods=lambda w: {m: METHODS[m] for m in table_methods(w.table)},
        datasets=lambda w: {d: DATASETS[d] for d in table_datasets(w.table)},
        evaluate=config["evaluate"],
    log:
        "logs/table/{table}.log",
    wildcard_constraints:
        table=one_of(config["tables"]),
    script:
        "../scripts/table.py"


def figure_params(kind):
    """What a t-SNE / latent-vs-PCA figure is drawn from: its spec, methods and dataset."""
    def get(w):
        spec = config["figures"][kind][w.name]
        return {"spec": spec, "methods": {m: METHODS[m] for m in spec["methods"]},
                "dataset": DATASETS[spec["dataset"]], "tsne_perplexity": config["figures"]["tsne_perplexity"],
                "tsne_max_points": config["figures"]["tsne_max_points"], "seed": config["seed"]}
    return get


def figure_inputs(kind, leaf):
    def get(w):
        spec = config["figures"][kind][w.name]
        return [run_path((spec["dataset"], m, spec["k"], 0), leaf) for m in spec["methods"]]
    return get


rule tsne_figure:
    input:
        scores=figure_inputs("tsne", "scores.json"),
        features=lambda w: f"data/features/{config['figures']['tsne'][w.name]['dataset']}",
    output:
        png="results/figures/{name}.png",
        provenance="results/figures/{name}.provenance.json",
    params:
        figure=figure_params("tsne"),
    log:
        "logs/figures/{name}.log",
    wildcard_constraints:
        name=one_of(config["figures"]["tsne"]),
    script:
        "../scripts/figure.py"


rule latent_vs_pca_figure:
    input:
        scores=figure_inputs("latent_vs_pca", "scores.json"),
        features=lambda w: f"data/features/{config['figures']['latent_vs_pca'][w.name]['dataset']}",
    output:
        png="results/figures/{name}.png",
        provenance="results/figures/{name}.provenance.json",
    params:
        figure=figure_params("latent_vs_pca"),
    log:
        "logs/figures/{name}.log",
    wildcard_constraints:
        name=one_of(config["figures"]["latent_vs_pca"]),
    script:
        "../scripts/figure.py"


rule gumbel_softmax_figure:
    output:
        png="results/figures/gumbel_softmax.png",
        provenance="results/figures/gumbel_softmax.provenance.json",
    params:
        figure={"spec": config["figures"]["gumbel_softmax"], "seed": config["seed"]},
    log:
        "logs/figures/gumbel_softmax.log",
    script:
        "../scripts/figure.py"


rule curves_figure:
    input:
        lambda w: [run_path((w.dataset, w.method, int(w.k), s), "history.csv")
                   for s in curve_groups()[(w.dataset, w.method, int(w.k))]],
    output:
        png=CURVES,
        provenance=CURVES.replace(".png", ".provenance.json"),
    params:
        figure=lambda w: {"method": METHODS[w.method], "seeds": curve_groups()[(w.dataset, w.method, int(w.k))]},
    log:
        "logs/figures/curves/{dataset}/{method}_k{k}.log",
    wildcard_constraints:
        method=one_of(VAE_METHODS),
        k=r"\d+",
    script:
        "../scripts/figure.py"


rule tables:
    """Target: every table of params.yaml `tables:`."""
    input:
        expand("results/{table}.{ext}", table=list(config["tables"]), ext=["csv", "md"]),


rule figures:
    """Target: every figure of params.yaml `figures:` and the training curves of every trained run."""
    input:
        expand("results/figures/{name}.png", name=[*config["figures"]["tsne"], *config["figures"]["latent_vs_pca"]]),
        ["results/figures/gumbel_softmax.png"] if config["figures"]["gumbel_softmax"] else [],
        [CURVES.format(dataset=d, method=m, k=k) for d, m, k in curve_groups()],
