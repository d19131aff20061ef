"""Taxonomy figure: hypernyms per leaf and leaves per hypernym.

Snakemake: input.pairs → output[0] (PNG).
"""

import logging

from taxvlm.data.taxonomy_figure import plot_taxonomy

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
plot_taxonomy(snakemake.input.pairs, snakemake.output[0])
