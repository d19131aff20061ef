"""Train one projector. Snakemake: input.features, input.train (the objective's table), input.val,
input.concepts, input.lm_weights (optional folder); params.lm, params.encoder, params.training,
params.checkpoint; output.projector/curve/config (one run folder); wildcards.init, wildcards.objective,
wildcards.seed."""

from pathlib import Path

import torch

from taxvlm.rulelog import rule_log
from taxvlm.specs import TrainingSetup
from taxvlm.training.loop import Member, SharedFiles, train_projector

sm = snakemake  # noqa: F821
rule_log(sm.log[0])
torch.set_num_threads(sm.threads)
train_projector(
    TrainingSetup.from_config(
        lm=sm.params.lm, lm_weights=sm.input.get("lm_weights"), init=sm.wildcards.init, encoder=sm.params.encoder,
        training=sm.params.training, objective=sm.wildcards.objective,
    ),
    SharedFiles(Path(sm.input.features), Path(sm.input.concepts)),
    Member(
        Path(sm.input.train), int(sm.wildcards.seed), Path(sm.output.projector).parent, Path(sm.params.checkpoint),
        Path(sm.input.val),
    ),
)  # fmt: skip
