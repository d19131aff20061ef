"""Snakemake script: download one asset (taxvlm.assets.fetch.fetch_asset), verified against its pinned
sha256 or, unpinned, against the hash its first download recorded in resources/assets.lock."""

from pathlib import Path

from taxvlm.assets.fetch import fetch_asset
from taxvlm.assets.lock import LOCK_PATH
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
fetch_asset(dict(snakemake.params.spec), Path(snakemake.output[0]), lock=LOCK_PATH)  # noqa: F821
