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

rule_log(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)
lm_weights = snakemake.input.get("lm_weights")
capture_states(
    Path(snakemake.input.projector).parent,
    Path(snakemake.input.features),
    {name: Path(snakemake.input[name]) for name in ("train", "seen", "unseen", "leaf")},
    snakemake.params.lm,
    Path(lm_weights) if lm_weights else None,
    snakemake.wildcards.init,
    int(snakemake.wildcards.seed),
    dict(snakemake.params.settings),
    Path(snakemake.output[0]),
)
