"""Train one tuning candidate (the pretrained LM) and score the validation leaf questions every epoch.

Snakemake: input.features, input.train, input.val, input.lm_weights (optional); params.lm,
params.encoder, params.training (config.training with the candidate's lr / feature_norm / epochs),
params.seed, params.checkpoint; output.projector (its folder receives the run files).
"""

from pathlib import Path

import torch

from taxvlm.rulelog import rule_log
from taxvlm.specs import RunSpec
from taxvlm.train import Member, SharedFiles, train_projector

sm = snakemake  # noqa: F821
rule_log(sm.log[0])
torch.set_num_threads(sm.threads)
train_projector(
    RunSpec.from_config(
        sm.params.lm, sm.input.get("lm_weights"), "pretrained", sm.params.encoder, sm.params.training, "yesno"
    ),
    SharedFiles(Path(sm.input.features)),
    Member(
        Path(sm.input.train), int(sm.params.seed), Path(sm.output.projector).parent, Path(sm.params.checkpoint),
        Path(sm.input.val),
    ),
)  # fmt: skip
