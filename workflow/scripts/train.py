"""Snakemake adapter: rule train → uvac.runs.train_run."""
from pathlib import Path

from uvac import log, runs

logger = log.setup(snakemake.log[0])
w = snakemake.wildcards
with log.user_errors(f"train {w.dataset}/{w.method}/k{w.k}/seed{w.seed}"):
    metrics = runs.train_run(snakemake.input.features, snakemake.params.method, int(w.k), int(w.seed),
                             snakemake.params.train, Path(snakemake.output.model).parent,
                             pretext_file=snakemake.input.get("pretext"))
    logger.info("finished: %s", metrics)
