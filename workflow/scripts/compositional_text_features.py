"""Snakemake script: the frozen LM's mean-pooled states of every caption and hard negative, once
(taxvlm.compositional.stage.compute_text_features). input.negatives, optional input.lm_weights;
params.lm, params.types; wildcards.init → output[0]."""

from pathlib import Path

import torch

from taxvlm.compositional.stage import compute_text_features
from taxvlm.rulelog import rule_log
from taxvlm.specs import FrozenLM

sm = snakemake  # noqa: F821
rule_log(sm.log[0])
torch.set_num_threads(sm.threads)
compute_text_features(
    Path(sm.input.negatives),
    list(sm.params.types),
    FrozenLM.from_config(sm.params.lm, sm.input.get("lm_weights"), sm.wildcards.init),
    Path(sm.output[0]),
)
