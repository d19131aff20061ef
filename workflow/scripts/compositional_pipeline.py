"""Snakemake script: the pipeline-mode contrastive model of one run and ablation
(taxvlm.compositional.stage.train_pipeline_mode). input.negatives/images/features/projector/text_features;
params.section (config.compositional); wildcards.ablation, wildcards.seed → output.model's folder."""

from pathlib import Path

import torch

from taxvlm.compositional.stage import train_pipeline_mode
from taxvlm.rulelog import rule_log
from taxvlm.settings.compositional import Compositional

rule_log(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)
train_pipeline_mode(
    Path(sm.input.negatives),
    Path(sm.input.images),
    Path(sm.input.features),
    Path(sm.input.projector),
    Path(sm.input.text_features),
    Compositional.from_config(sm.params.section, "config.compositional"),
    sm.wildcards.ablation,
    int(sm.wildcards.seed),
    Path(sm.output.model).parent,
)
