"""Snakemake script: THINGS image archives → images/<concept>/<file> (taxvlm.assets.things)."""

import logging
from pathlib import Path

from taxvlm.assets.things import extract_things_images

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
extract_things_images(
    [Path(p) for p in snakemake.input.archives],  # noqa: F821
    Path(snakemake.output[0]),  # noqa: F821
    snakemake.params.password or "",  # noqa: F821
)
