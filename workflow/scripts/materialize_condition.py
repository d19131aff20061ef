"""Training and test tables of one (condition, shuffle).

Snakemake: wildcards.condition/shuffle, input.concepts (its folder holds the data tables),
params.conditions, params.shuffles → output.train (its folder receives every table + summary.json).
"""

from pathlib import Path

from taxvlm.data.materialize import materialize_condition
from taxvlm.rulelog import rule_log
from taxvlm.settings.dataset import Conditions, Shuffles

rule_log(snakemake.log[0])  # noqa: F821
materialize_condition(
    snakemake.wildcards.condition,
    snakemake.wildcards.shuffle,
    Path(snakemake.input.concepts).parent,
    Conditions.from_config(snakemake.params.conditions, "config.conditions"),
    Shuffles.from_config(snakemake.params.shuffles, "config.shuffles"),
    Path(snakemake.output.train).parent,
)
