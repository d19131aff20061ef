"""Greedy captions of the test images by one caption-trained projector, scored with CIDEr-D and BLEU-4.

Snakemake: input.features, input.projector, input.references (image_id, caption), input.lm_weights
(optional folder); params.lm, params.run (the run's keys: its wildcards), params.max_new_tokens,
params.batch_size → output.captions (captions.tsv), output.scores (caption_scores.tsv); log[0].
"""

from pathlib import Path

import torch

from taxvlm.captioning import caption_run
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)
lm_weights = snakemake.input.get("lm_weights")
caption_run(
    Path(snakemake.input.features),
    Path(snakemake.input.projector),
    Path(snakemake.input.references),
    snakemake.params.lm,
    Path(lm_weights) if lm_weights else None,
    dict(snakemake.params.run),
    int(snakemake.params.max_new_tokens),
    int(snakemake.params.batch_size),
    Path(snakemake.output.captions),
    Path(snakemake.output.scores),
)
