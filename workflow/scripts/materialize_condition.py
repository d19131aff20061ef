"""Training and test tables of one (condition, shuffle).

Snakemake: wildcards.condition/shuffle, input.concepts (its folder holds the data tables),
params.conditions, params.shuffles → output.train (its folder receives every table + summary.json).
"""

from pathlib import Path

from taxvlm.data.materialize import materialize_condition
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
materialize_condition(
    snakemake.wildcards.condition,
    snakemake.wildcards.shuffle,
    Path(snakemake.input.concepts).parent,
    snakemake.params.conditions,
    snakemake.params.shuffles,
    Path(snakemake.output.train).parent,
)
