"""Readouts along training of every yes/no run (taxvlm.analysis.dynamics).

Snakemake:
  input.by_step      predictions_by_step.tsv of each run, in the order of params.runs
  input.val_curves   val_curve.tsv of each run (same order): the best-leaf point is chosen on them
  input.train        the training table of each run (same order): negative leaf rows per hypernym
  input.pairs        results/data/pairs.tsv;  input.coherence  coherence.tsv
  params.runs        list of dicts with encoder, lm, init, condition, shuffle, objective, seed
  output.dynamics / categories / correlations (TSV), output.statement (the report's sentence, text)
  log[0]
"""

import logging

from taxvlm.analysis.dynamics import collect_dynamics
from taxvlm.analysis.metrics import read_typed
from taxvlm.io import read_tsv
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
inputs = snakemake.input
runs = [
    dict(run) | {"path": path, "val_curve": curve, "train": train}
    for run, path, curve, train in zip(
        snakemake.params.runs, inputs.by_step, inputs.val_curves, inputs.train, strict=True
    )
]
pairs = read_tsv(inputs.pairs)
dynamics = collect_dynamics(
    runs,
    pairs["hypernym"].nunique(),
    pairs,
    read_typed(inputs.coherence, ("coherence",)),
    dict(snakemake.output.items()),
)
logging.info("%d runs, %d dynamics rows", len(runs), len(dynamics))
