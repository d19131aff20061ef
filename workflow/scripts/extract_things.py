"""Snakemake script: THINGS image archives → images/<concept>/<file> (taxvlm.assets.things)."""

from pathlib import Path

from taxvlm.assets.things import extract_things_images
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
extract_things_images(
    [Path(p) for p in snakemake.input.archives],  # noqa: F821
    Path(snakemake.output[0]),  # noqa: F821
    snakemake.params.password or "",  # noqa: F821
)
