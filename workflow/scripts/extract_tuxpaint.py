"""Snakemake script: tuxpaint stamps .deb → stamps folder (taxvlm.assets.tuxpaint.extract_stamps)."""

import logging
from pathlib import Path

from taxvlm.assets.tuxpaint import extract_stamps

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
extract_stamps(Path(snakemake.input[0]), Path(snakemake.output[0]))  # noqa: F821
