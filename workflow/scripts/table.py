"""Snakemake adapter: rule table → uvac.tables.write_table."""
from uvac import log, tables

logger = log.setup(snakemake.log[0])
p, out = snakemake.params, snakemake.output
with log.user_errors(f"table {snakemake.wildcards.table}"):
    table = tables.write_table(snakemake.wildcards.table, p.spec, p.methods, p.datasets, "results/runs",
                               out.csv, out.md, out.metrics, provenance_params=dict(p.items()))
    logger.info("%d rows written to %s", len(table), out.csv)
