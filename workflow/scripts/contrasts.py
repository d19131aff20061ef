"""Category-level contrasts of the held-out hypernyms and the answer table, statement and figure
(taxvlm.analysis.contrasts, taxvlm.analysis.answer; docs/protocol.md §11).

Snakemake:
  input.results       predictions.tsv / naming.tsv of every run, in the order of params.runs
  input.upper_bounds  results/analysis/upper_bound/{lm}/{init}.tsv, in the order of params.upper_bounds
  input.val_curves    val_curve.tsv of every trained run, in the order of params.trained
  input.pairs         results/data/pairs.tsv (lexical_overlap)
  params.runs         run keys + readout per results file; params.upper_bounds: lm, init per file
  params.trained      run keys per val curve;  params.draws, params.seed: the bootstrap's
  output.leaf_scores, output.contrasts, output.trained (TSV); output.csv / md / statement / figure
  log[0]
"""

import logging

from taxvlm.analysis.answer import write_answer
from taxvlm.analysis.contrasts import collect_leaf_scores, contrast_table, trained_task, write_contrasts
from taxvlm.io import read_tsv
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
inputs, params, outputs = snakemake.input, snakemake.params, snakemake.output  # noqa: F821
runs = [dict(run) | {"path": path} for run, path in zip(params.runs, inputs.results, strict=True)]
bounds = [dict(b) | {"path": path} for b, path in zip(params.upper_bounds, inputs.upper_bounds, strict=True)]
trained_runs = [dict(run) | {"val_curve": path} for run, path in zip(params.trained, inputs.val_curves, strict=True)]
leaf_scores = collect_leaf_scores(runs, bounds, read_tsv(inputs.pairs), outputs.leaf_scores)
contrasts = contrast_table(leaf_scores, draws=int(params.draws), seed=int(params.seed))
trained = trained_task(trained_runs)
write_contrasts(contrasts, trained, outputs.contrasts, outputs.trained)
rows = write_answer(contrasts, trained, {k: outputs[k] for k in ("csv", "md", "statement", "figure")})
logging.info("%d leaf rows, %d contrasts, %d answer rows", len(leaf_scores), len(contrasts), len(rows))
