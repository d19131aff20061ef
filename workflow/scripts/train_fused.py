"""Train one fused group of projectors. Snakemake: input.features, input.train and input.val (one
per member), input.concepts, input.lm_weights (optional folder); params.lm, params.encoder,
params.training, params.init, params.objective, params.memory_gib, params.members (run keys),
params.checkpoints;
output.projector (one per member: its run folder)."""

from pathlib import Path

import torch

from taxvlm.rulelog import rule_log
from taxvlm.train import Member, train_projectors

rule_log(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)
lm_weights = snakemake.input.get("lm_weights")
members = [
    Member(Path(train), int(keys["seed"]), Path(projector).parent, Path(checkpoint), Path(val))
    for keys, train, val, projector, checkpoint in zip(
        snakemake.params.members,
        snakemake.input.train,
        snakemake.input.val,
        snakemake.output.projector,
        snakemake.params.checkpoints,
        strict=True,
    )
]
train_projectors(
    Path(snakemake.input.features),
    snakemake.params.lm,
    Path(lm_weights) if lm_weights else None,
    snakemake.params.encoder,
    snakemake.params.init,
    snakemake.params.training,
    members,
    objective=snakemake.params.objective,
    concepts_tsv=Path(snakemake.input.concepts),
    memory_gib=snakemake.params.memory_gib,
)
