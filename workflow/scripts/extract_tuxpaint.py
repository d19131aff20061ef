"""Snakemake script: tuxpaint stamps .deb → stamps folder (taxvlm.assets.tuxpaint.extract_stamps)."""

from pathlib import Path

from taxvlm.assets.tuxpaint import extract_stamps
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
extract_stamps(Path(snakemake.input[0]), Path(snakemake.output[0]))  # noqa: F821
