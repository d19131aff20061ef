"""The tuning choices: input.curves (val_curve.tsv per (target, candidate) of params.plan, in its order),
params.setup → output.table (tidy), output.markdown (the report copied to docs/tuning.md)."""

import logging

from taxvlm.rulelog import rule_log
from taxvlm.tune import write_tuning

rule_log(snakemake.log[0])  # noqa: F821
chosen = write_tuning(
    snakemake.params.plan,
    list(snakemake.input.curves),
    snakemake.params.setup,
    snakemake.output.table,
    snakemake.output.markdown,
)
logging.info("chosen: %s", chosen)
