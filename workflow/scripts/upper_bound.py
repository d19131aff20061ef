"""The text upper bound of every readout for one LM and init (docs/protocol.md §12;
taxvlm.analysis.upper_bound).

Snakemake:
  input.concepts, input.hypernyms   results/data/concepts.tsv, hypernyms.tsv (the leaf's text, the names)
  input.questions               results/data/questions.tsv (its hypernym questions are the rows)
  input.lm_weights              optional local weights folder of the LM
  params.lm                     the LM's config spec (`chat_template` as the VLM runs use it; the
                                random-init twin is theirs, `random_init_seed`)
  params.batch_size             config.evaluation.batch_size, as the VLM's scoring
  wildcards.init
  output[0]                     results/analysis/upper_bound/{lm}/{init}.tsv
  log[0]
"""

import torch

from taxvlm.analysis.upper_bound import upper_bound_job
from taxvlm.rulelog import rule_log
from taxvlm.specs import FrozenLM

sm = snakemake  # noqa: F821
rule_log(sm.log[0])
torch.set_num_threads(sm.threads)
upper_bound_job(
    FrozenLM.from_config(sm.params.lm, sm.input.get("lm_weights"), sm.wildcards.init),
    sm.input,
    sm.params.batch_size,
    sm.output[0],
)
