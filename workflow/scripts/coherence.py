"""Visual coherence of every category per encoder, centering (raw, centred) and shuffle, and its
correlation with F1 per run and centering.

Snakemake:
  input.features      list of results/features/{encoder}.pt, in the order of params.encoders
  input.shuffle_maps  list of shuffle_map.tsv (any condition's), in the order of params.shuffles
  input.images        results/data/images.tsv (its `split` picks the training images, whose mean
                      embedding the centred coherence subtracts)
  input.pairs         results/data/pairs.tsv
  input.metrics       results/analysis/metrics.tsv
  params.encoders, params.shuffles   lists of names
  output.coherence    coherence.tsv;  output.correlations  coherence_correlations.tsv
  log[0]
"""

import logging

import torch

from taxvlm.analysis.coherence import coherence_correlations, coherence_tables
from taxvlm.analysis.metrics import read_metrics
from taxvlm.io import write_tsv
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)
maps = dict(zip(snakemake.params.shuffles, snakemake.input.shuffle_maps, strict=True))
features = dict(zip(snakemake.params.encoders, snakemake.input.features, strict=True))
coherence = coherence_tables(features, snakemake.input.images, snakemake.input.pairs, maps)
write_tsv(coherence, snakemake.output.coherence)
write_tsv(coherence_correlations(coherence, read_metrics(snakemake.input.metrics)), snakemake.output.correlations)
logging.info(
    "mean coherence per encoder, centering and shuffle:\n%s",
    coherence.groupby(["encoder", "centering", "shuffle"])["coherence"].mean(),
)
