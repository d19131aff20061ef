"""Cache one encoder's features over every image. Snakemake: input.images, input.weights (optional
folder) → output[0]; params.spec, params.batch_size."""

from pathlib import Path

import torch

from taxvlm.features import extract_features
from taxvlm.rulelog import rule_log
from taxvlm.settings.models import EncoderSpec

rule_log(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)
weights = snakemake.input.get("weights")
extract_features(
    EncoderSpec.from_config(snakemake.params.spec, "encoder"),
    Path(weights) if weights else None,
    Path(snakemake.input.images),
    Path(snakemake.output[0]),
    batch_size=snakemake.params.batch_size,
)
