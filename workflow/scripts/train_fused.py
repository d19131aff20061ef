"""Train one fused group of projectors. Snakemake: input.features, input.train and input.val (one
per member), input.concepts, input.lm_weights (optional folder); params.lm, params.encoder,
params.training, params.init, params.objective, params.memory_gib, params.members (run keys),
params.checkpoints;
output.projector (one per member: its run folder)."""

from pathlib import Path

import torch

from taxvlm.rulelog import rule_log
from taxvlm.specs import TrainingSetup
from taxvlm.training.loop import Member, SharedFiles, train_projectors

sm = snakemake  # noqa: F821
rule_log(sm.log[0])
torch.set_num_threads(sm.threads)
members = [
    Member(Path(train), int(keys["seed"]), Path(projector).parent, Path(checkpoint), Path(val))
    for keys, train, val, projector, checkpoint in zip(
        sm.params.members, sm.input.train, sm.input.val, sm.output.projector, sm.params.checkpoints, strict=True
    )
]
train_projectors(
    TrainingSetup.from_config(
        lm=sm.params.lm, lm_weights=sm.input.get("lm_weights"), init=sm.params.init, encoder=sm.params.encoder,
        training=sm.params.training, objective=sm.params.objective,
    ),
    SharedFiles(Path(sm.input.features), Path(sm.input.concepts)),
    members,
    memory_gib=sm.params.memory_gib,
)  # fmt: skip
