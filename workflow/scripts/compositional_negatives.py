"""Snakemake script: hard negatives of a captions table (taxvlm.compositional.negatives.build_negatives).
input.captions, input.nltk_data, optional input.concepts/pairs/images (the dataset's taxonomy);
params.seed → output[0]."""

from pathlib import Path

from taxvlm.compositional.negatives import build_negatives
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
inputs = snakemake.input  # noqa: F821
dataset = (Path(inputs.concepts), Path(inputs.pairs), Path(inputs.images)) if "concepts" in inputs.keys() else None
build_negatives(
    Path(inputs.captions),
    Path(inputs.nltk_data),
    int(snakemake.params.seed),  # noqa: F821
    Path(snakemake.output[0]),  # noqa: F821
    dataset,
)
