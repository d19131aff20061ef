"""Training and test tables of one (condition, shuffle).

Snakemake: wildcards.condition/shuffle, input.concepts (its folder holds the data tables),
params.conditions, params.shuffles → output.train (its folder receives every table + summary.json).
"""

import logging
from pathlib import Path

from taxvlm.data.materialize import materialize_condition

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
materialize_condition(
    snakemake.wildcards.condition,
    snakemake.wildcards.shuffle,
    Path(snakemake.input.concepts).parent,
    snakemake.params.conditions,
    snakemake.params.shuffles,
    Path(snakemake.output.train).parent,
)
