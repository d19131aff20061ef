"""Greedy captions of the test images by one caption-trained projector, scored with CIDEr-D and BLEU-4.

Snakemake: input.features, input.projector, input.references (image_id, caption), input.lm_weights
(optional folder); params.lm, params.run (the run's keys: its wildcards), params.max_new_tokens,
params.batch_size → output.captions (captions.tsv), output.scores (caption_scores.tsv); log[0].
"""

from pathlib import Path

import torch

from taxvlm.evaluation.captioning import caption_run
from taxvlm.rulelog import rule_log
from taxvlm.specs import trained_run

sm = snakemake  # noqa: F821
rule_log(sm.log[0])
torch.set_num_threads(sm.threads)
keys = dict(sm.params.run)
caption_run(
    trained_run(sm.params.lm, sm.input.get("lm_weights"), keys, sm.input.projector, sm.input.features),
    keys,
    Path(sm.input.references),
    int(sm.params.max_new_tokens),
    int(sm.params.batch_size),
    Path(sm.output.captions),
    Path(sm.output.scores),
)
