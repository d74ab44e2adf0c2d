"""Snakemake adapter: rule pretext → uvac.runs.pretext_run."""
from uvac import log, runs

logger = log.setup(snakemake.log[0])
w = snakemake.wildcards
with log.user_errors(f"pretext {w.dataset} e{w.epochs} b{w.batch_size} seed{w.seed}"):
    runs.pretext_run(snakemake.input[0], int(w.seed), snakemake.params.train, snakemake.output[0],
                     epochs=int(w.epochs), batch_size=int(w.batch_size))
    logger.info("finished: %s", snakemake.output[0])
