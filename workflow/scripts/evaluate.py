"""Snakemake adapter: rule evaluate → uvac.evaluation.score_run."""
from pathlib import Path

from uvac import evaluation, log

logger = log.setup(snakemake.log[0])
w = snakemake.wildcards
with log.user_errors(f"evaluate {w.dataset}/{w.method}/k{w.k}/seed{w.seed}"):
    scores = evaluation.score_run(Path(snakemake.output[0]).parent, snakemake.input.features,
                                  model=snakemake.params.model, k=int(w.k), seed=snakemake.params.seed,
                                  silhouette_sample=snakemake.params.evaluate["silhouette_sample"])
    logger.info("scores: %s", scores)
