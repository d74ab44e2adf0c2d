"""Snakemake adapter: the figure rules → uvac.report."""
from uvac import log, report

log.setup(snakemake.log[0])
fig, out, w = snakemake.params.figure, snakemake.output.png, snakemake.wildcards
record = {"figure": fig}
with log.user_errors(f"{snakemake.rule} {out}"):
    if snakemake.rule == "tsne_figure":
        report.tsne_file(fig["spec"], fig["methods"], out, perplexity=fig["tsne_perplexity"],
                         max_points=fig["tsne_max_points"], seed=fig["seed"], provenance_params=record)
    elif snakemake.rule == "latent_vs_pca_figure":
        report.latent_vs_pca_file(fig["spec"], fig["methods"], out, provenance_params=record)
    elif snakemake.rule == "gumbel_softmax_figure":
        report.gumbel_softmax_file(fig["spec"], out, seed=fig["seed"], provenance_params=record)
    else:
        report.curves_file(w.dataset, w.method, int(w.k), fig["seeds"], out, provenance_params=record)
