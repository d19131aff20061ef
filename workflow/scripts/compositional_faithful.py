"""Snakemake script: the faithful-mode contrastive model (an open_clip model fine-tuned with CE-CLIP's
recipe; taxvlm.compositional.stage.train_faithful_mode). input.negatives/images; params.spec (the
open_clip entry), params.section; wildcards.ablation → output.model's folder."""

from pathlib import Path

import torch

from taxvlm.compositional.stage import train_faithful_mode
from taxvlm.rulelog import rule_log
from taxvlm.settings.compositional import Compositional, OpenClipModel

rule_log(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)
section = Compositional.from_config(sm.params.section, "config.compositional")
train_faithful_mode(
    Path(sm.input.negatives),
    Path(sm.input.images),
    OpenClipModel.from_config(sm.params.spec, "config.compositional.open_clip"),
    section,
    sm.wildcards.ablation,
    section.seed,
    Path(sm.output.model).parent,
)
