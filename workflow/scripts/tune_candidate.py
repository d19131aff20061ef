"""Train one tuning candidate (the pretrained LM) and score the validation leaf questions every epoch.

Snakemake: input.features, input.train, input.val, input.lm_weights (optional); params.lm,
params.encoder, params.training (config.training with the candidate's lr / feature_norm / epochs),
params.seed, params.checkpoint; output.projector (its folder receives the run files).
"""

from pathlib import Path

import torch

from taxvlm.rulelog import rule_log
from taxvlm.train import train_projector

rule_log(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)
lm_weights = snakemake.input.get("lm_weights")
train_projector(
    Path(snakemake.input.features),
    Path(snakemake.input.train),
    snakemake.params.lm,
    Path(lm_weights) if lm_weights else None,
    snakemake.params.encoder,
    "pretrained",
    snakemake.params.training,
    int(snakemake.params.seed),
    Path(snakemake.output.projector).parent,
    Path(snakemake.params.checkpoint),
    val_tsv=Path(snakemake.input.val),
)
