"""Snakemake script: download one pinned asset (taxvlm.assets.fetch.fetch_asset)."""

import logging
from pathlib import Path

from taxvlm.assets.fetch import fetch_asset

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
fetch_asset(dict(snakemake.params.spec), Path(snakemake.output[0]))  # noqa: F821
