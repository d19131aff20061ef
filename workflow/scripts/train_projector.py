"""Train one projector. Snakemake: input.features, input.train (the objective's table), input.val,
input.concepts, input.lm_weights (optional folder); params.lm, params.encoder, params.training,
params.checkpoint; output.projector/curve/config (one run folder); wildcards.init, wildcards.objective,
wildcards.seed."""

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
    snakemake.wildcards.init,
    snakemake.params.training,
    int(snakemake.wildcards.seed),
    Path(snakemake.output.projector).parent,
    Path(snakemake.params.checkpoint),
    val_tsv=Path(snakemake.input.val),
    objective=snakemake.wildcards.objective,
    concepts_tsv=Path(snakemake.input.concepts),
)
