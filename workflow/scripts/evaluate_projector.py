"""Forced-choice evaluation of one projector. Snakemake: input.features, input.projector,
input.seen/unseen/leaf, input.lm_weights (optional folder); params.lm, params.batch_size;
input.checkpoints (the run's kept points); wildcards.init, wildcards.seed → output.predictions
(predictions.tsv: margins with and without the image, and the prediction of every decision rule, see
taxvlm.decision) and output.by_step (the same for every kept point)."""

from pathlib import Path

import torch

from taxvlm.evaluate import evaluate_projector
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)
lm_weights = snakemake.input.get("lm_weights")
tables = {name: Path(snakemake.input[name]) for name in ("seen", "unseen", "leaf")}
evaluate_projector(
    Path(snakemake.input.features),
    Path(snakemake.input.projector),
    tables,
    snakemake.params.lm,
    Path(lm_weights) if lm_weights else None,
    snakemake.wildcards.init,
    int(snakemake.wildcards.seed),
    snakemake.params.batch_size,
    Path(snakemake.output.predictions),
    checkpoints_path=Path(snakemake.input.checkpoints),
    by_step_path=Path(snakemake.output.by_step),
)
