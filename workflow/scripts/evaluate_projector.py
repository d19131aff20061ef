"""Forced-choice evaluation of one projector. Snakemake: input.features, input.projector,
input.seen/unseen/leaf/null, input.lm_weights (optional folder); params.lm, params.batch_size;
input.checkpoints (the run's kept points); wildcards.init, wildcards.seed → output.predictions
(predictions.tsv: margins with and without the image, and the prediction of every decision rule, see
taxvlm.evaluation.decision) and output.by_step (the same for every kept point)."""

from pathlib import Path

import torch

from taxvlm.evaluation.readouts import evaluate_projector
from taxvlm.rulelog import rule_log
from taxvlm.specs import trained_run

sm = snakemake  # noqa: F821
rule_log(sm.log[0])
torch.set_num_threads(sm.threads)
evaluate_projector(
    trained_run(sm.params.lm, sm.input.get("lm_weights"), sm.wildcards, sm.input.projector, sm.input.features),
    {name: Path(sm.input[name]) for name in ("seen", "unseen", "leaf", "null")},
    sm.params.batch_size,
    Path(sm.output.predictions),
    checkpoints_path=Path(sm.input.checkpoints),
    by_step_path=Path(sm.output.by_step),
)
