"""Snakemake script: the frozen LM's mean-pooled states of every caption and hard negative, once
(taxvlm.compositional.stage.compute_text_features). input.negatives, optional input.lm_weights;
params.lm, params.types; wildcards.init → output[0]."""

from pathlib import Path

import torch

from taxvlm.compositional.stage import compute_text_features
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)
lm_weights = sm.input.get("lm_weights")
compute_text_features(
    Path(sm.input.negatives),
    list(sm.params.types),
    sm.params.lm,
    Path(lm_weights) if lm_weights else None,
    sm.wildcards.init,
    Path(sm.output[0]),
)
