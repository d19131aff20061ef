"""Naming by likelihood with one projector. Snakemake: input.features, input.projector,
input.seen/unseen/leaf/null, input.concepts, input.hypernyms, input.lm_weights (optional folder); params.lm,
params.batch_size; wildcards.init, wildcards.seed → output[0] (naming.tsv: the columns of
predictions.tsv, margin = log-likelihood of the name with the image, margin_noimage = without it; see
taxvlm.evaluation.readouts)."""

from pathlib import Path

import torch

from taxvlm.evaluation.readouts import name_projector
from taxvlm.rulelog import rule_log
from taxvlm.specs import trained_run

sm = snakemake  # noqa: F821
rule_log(sm.log[0])
torch.set_num_threads(sm.threads)
name_projector(
    trained_run(sm.params.lm, sm.input.get("lm_weights"), sm.wildcards, sm.input.projector, sm.input.features),
    {name: Path(sm.input[name]) for name in ("seen", "unseen", "leaf", "null")},
    Path(sm.input.concepts),
    Path(sm.input.hypernyms),
    sm.params.batch_size,
    Path(sm.output[0]),
)
