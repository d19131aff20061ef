"""Taxonomy figure: hypernyms per leaf and leaves per hypernym.

Snakemake: input.pairs → output[0] (PNG).
"""


from taxvlm.analysis.taxonomy_figure import plot_taxonomy
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
plot_taxonomy(snakemake.input.pairs, snakemake.output[0])
