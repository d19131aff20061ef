"""Snakemake script: build a local model folder (taxvlm.assets.convert.convert_weights).

`input.sources` (the downloaded assets) is empty for the tiny random models.
"""

from pathlib import Path

from taxvlm.assets.convert import convert_weights
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
convert_weights(snakemake.params.kind, [Path(p) for p in snakemake.input.get("sources", [])],  # noqa: F821
                Path(snakemake.output[0]), dict(snakemake.params.get("options") or {}))  # noqa: F821
