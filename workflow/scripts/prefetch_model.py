"""Snakemake script: fetch one hub model into its local folder (taxvlm.assets.hub.prefetch_model)."""

from pathlib import Path

from taxvlm.assets.hub import prefetch_model
from taxvlm.rulelog import rule_log

sm = snakemake  # noqa: F821
rule_log(sm.log[0])
prefetch_model(dict(sm.params.spec), Path(sm.output[0]))
