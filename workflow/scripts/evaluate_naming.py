"""Naming by likelihood with one projector. Snakemake: input.features, input.projector,
input.seen/unseen/leaf, input.concepts, input.hypernyms, input.lm_weights (optional folder); params.lm,
params.batch_size; wildcards.init, wildcards.seed → output[0] (naming.tsv: the columns of
predictions.tsv, margin = log-likelihood of the name with the image, margin_noimage = without it; see
taxvlm.evaluate)."""

from pathlib import Path

import torch

from taxvlm.evaluate import name_projector
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)
lm_weights = snakemake.input.get("lm_weights")
tables = {name: Path(snakemake.input[name]) for name in ("seen", "unseen", "leaf")}
name_projector(
    Path(snakemake.input.features),
    Path(snakemake.input.projector),
    tables,
    Path(snakemake.input.concepts),
    Path(snakemake.input.hypernyms),
    snakemake.params.lm,
    Path(lm_weights) if lm_weights else None,
    snakemake.wildcards.init,
    int(snakemake.wildcards.seed),
    snakemake.params.batch_size,
    Path(snakemake.output[0]),
)
