"""The tuning choice: input.curves (val_curve.tsv per candidate, in the order of params.candidates),
params.setup → output.table (tidy), output.markdown (the report copied to docs/tuning.md)."""

import logging

from taxvlm.tune import write_tuning

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
chosen = write_tuning(
    snakemake.params.candidates,
    list(snakemake.input.curves),
    snakemake.params.setup,
    snakemake.output.table,
    snakemake.output.markdown,
)
logging.info("chosen: %s", chosen)
