"""Snakemake script: build a local model folder (taxvlm.assets.convert.convert_weights).

`input.source` (the downloaded asset) is absent for the tiny random models.
"""

import logging
from pathlib import Path

from taxvlm.assets.convert import convert_weights

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,  # noqa: F821
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
source = snakemake.input.get("source")  # noqa: F821
convert_weights(snakemake.params.kind, None if source is None else Path(source),  # noqa: F821
                Path(snakemake.output[0]), dict(snakemake.params.get("options") or {}))  # noqa: F821
