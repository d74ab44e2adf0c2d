"""Snakemake adapter: rule baseline → uvac.baselines.baseline_run."""
from pathlib import Path

from uvac import baselines, log

logger = log.setup(snakemake.log[0])
w = snakemake.wildcards
with log.user_errors(f"baseline {w.dataset}/{w.method}/k{w.k}/seed{w.seed}"):
    metrics = baselines.baseline_run(snakemake.input[0], snakemake.params.method, int(w.k), int(w.seed),
                                     Path(snakemake.output.metrics).parent)
    logger.info("finished: %s", metrics)
