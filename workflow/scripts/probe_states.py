"""Hidden states of every LM layer of one yes/no run, cached for the probes (taxvlm.probing.states).

Snakemake: input.train/seen/unseen/leaf (the run's condition tables), input.features, input.projector
(its folder holds train_config.json and predictions.tsv, checked against this forward), input.lm_weights
(optional folder); params.lm, params.settings (batch_size, max_train_rows, seed, margin_tolerance,
name_suffix); wildcards.init, wildcards.seed → output[0] (the cache folder).
"""

from pathlib import Path

import torch

from taxvlm.probing.states import capture_states
from taxvlm.rulelog import rule_log
from taxvlm.specs import trained_run

sm = snakemake  # noqa: F821
rule_log(sm.log[0])
torch.set_num_threads(sm.threads)
capture_states(
    trained_run(sm.params.lm, sm.input.get("lm_weights"), sm.wildcards, sm.input.projector, sm.input.features),
    {name: Path(sm.input[name]) for name in ("train", "seen", "unseen", "leaf")},
    dict(sm.params.settings),
    Path(sm.output[0]),
)
