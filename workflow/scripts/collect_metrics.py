"""Tidy per-category metrics of every run under every decision rule, and the headline means (docs/protocol.md §11).

Snakemake:
  input.results      list of predictions.tsv (readout yesno) and naming.tsv (readout naming), in the
                     order of params.runs
  input.pairs        results/data/pairs.tsv (n_categories = its number of distinct hypernyms)
  params.runs        list of dicts with encoder, lm, init, condition, shuffle, objective, seed, readout
  output.metrics     metrics.tsv;  output.headline  headline.tsv
  log[0]
"""

import logging

from taxvlm.analysis.metrics import collect_metrics, headline
from taxvlm.io import read_tsv, write_tsv
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
runs = [
    dict(run) | {"path": path} for run, path in zip(snakemake.params.runs, snakemake.input.results, strict=True)
]
n_categories = read_tsv(snakemake.input.pairs)["hypernym"].nunique()
metrics = collect_metrics(runs, snakemake.output.metrics, n_categories=int(n_categories))
write_tsv(headline(metrics), snakemake.output.headline)
logging.info("%d runs, %d metric rows, %d hypernyms", len(runs), len(metrics), n_categories)
