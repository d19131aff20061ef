"""All analysis figures (taxvlm.analysis.figures.FIGURES) from the tidy tables.

Snakemake:
  input.metrics     results/analysis/metrics.tsv (the headline is recomputed from it)
  input.coherence   optional coherence.tsv (coherence figures; placeholder without)
  input.textprobe   optional combined text-probe summary TSV (textprobe figure; placeholder without)
  input.pairs       optional results/data/pairs.tsv (category-size figure; placeholder without)
  input.dynamics    optional dynamics.tsv (readouts along training; placeholder without)
  output            one named .png output per figure (taxvlm.analysis.names.FIGURE_NAMES)
  log[0]
"""

import logging

from taxvlm.analysis.figures import FIGURES, make_figures
from taxvlm.analysis.tables import tables_from_inputs
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
tables = tables_from_inputs(snakemake.input)
outputs = {name: snakemake.output[name] for name in FIGURES}
make_figures(tables, outputs)
logging.info("wrote %s", sorted(outputs))
