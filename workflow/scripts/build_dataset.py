"""Concept, pair and image tables of the configured dataset.

Snakemake: input.<name> (the `inputs` of taxvlm.data.datasets.build_dataset, plus `code`),
params.dataset, params.split → output.concepts/pairs/images/summary (one folder).
"""

from pathlib import Path

from taxvlm.data.datasets import build_dataset
from taxvlm.rulelog import rule_log
from taxvlm.settings.dataset import Dataset, Split

rule_log(snakemake.log[0])  # noqa: F821
inputs = {name: Path(path) for name, path in snakemake.input.items() if name != "code"}
build_dataset(
    Dataset.from_config(snakemake.params.dataset, "config.dataset"),
    Split.from_config(snakemake.params.split, "config.split"),
    inputs,
    Path(snakemake.output.concepts).parent,
)
