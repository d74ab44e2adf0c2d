# uvac workflow: raw audio → feature caches → runs (trained models, baselines) → scores → tables, figures.
# The paper configuration is params.yaml; the offline embedded default is
#   snakemake --cores 2 --configfile config/demo.yaml
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.feature_caches.input,
        rules.tables.input,
        rules.figures.input,
