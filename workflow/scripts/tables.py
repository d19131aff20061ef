"""All report tables (taxvlm.analysis.tables.TABLES) as CSV and Markdown.

Snakemake:
  input.metrics     results/analysis/metrics.tsv
  input.coherence   optional coherence.tsv (coherence summary and correlation tables)
  input.textprobe   optional combined text-probe summary TSV (text-probe tables)
  input.dynamics    optional dynamics.tsv (the pretrained-vs-twin table along training)
  output            named outputs `{name}_csv` and `{name}_md` per table (taxvlm.analysis.names.TABLE_NAMES)
  log[0]
"""

import logging

from taxvlm.analysis.tables import TABLES, make_tables, tables_from_inputs
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
tables = tables_from_inputs(snakemake.input)
outputs = {name: (snakemake.output[f"{name}_csv"], snakemake.output[f"{name}_md"]) for name in TABLES}
make_tables(tables, outputs)
logging.info("wrote %s", sorted(outputs))
