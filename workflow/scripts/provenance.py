"""The run's provenance (taxvlm.provenance): the resolved config's fingerprint and the code version.

Snakemake:
  params.fingerprint  config_fingerprint of the validated config (common.smk)
  params.repo         the workflow's folder (its git checkout)
  output[0]           results/analysis/provenance.json;  log[0]
"""

from taxvlm.provenance import write_provenance
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
write_provenance(snakemake.params.fingerprint, snakemake.params.repo, snakemake.output[0])  # noqa: F821
