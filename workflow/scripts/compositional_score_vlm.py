"""Snakemake script: one trained run of the grid scored on the test images' hard negatives
(taxvlm.compositional.stage.score_vlm). input.negatives/images/features/projector, optional
input.lm_weights; params.lm, params.batch_size; wildcards.init, wildcards.seed → output[0]."""

import logging
from pathlib import Path

import torch

from taxvlm.compositional.stage import score_vlm

logging.basicConfig(
    filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"  # noqa: F821
)
sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)
lm_weights = sm.input.get("lm_weights")
score_vlm(
    Path(sm.input.negatives),
    Path(sm.input.images),
    Path(sm.input.features),
    Path(sm.input.projector),
    sm.params.lm,
    Path(lm_weights) if lm_weights else None,
    sm.wildcards.init,
    int(sm.wildcards.seed),
    sm.params.batch_size,
    Path(sm.output[0]),
)
