"""Snakemake script: download one pinned asset (taxvlm.assets.fetch.fetch_asset)."""

from pathlib import Path

from taxvlm.assets.fetch import fetch_asset
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
fetch_asset(dict(snakemake.params.spec), Path(snakemake.output[0]))  # noqa: F821
