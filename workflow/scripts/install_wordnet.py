"""Snakemake script: WordNet 3.0 sdist → nltk data folder (taxvlm.assets.wordnet.install_wordnet)."""

import logging
from pathlib import Path

from taxvlm.assets.wordnet import install_wordnet

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
install_wordnet(Path(snakemake.input[0]), Path(snakemake.output[0]))  # noqa: F821
