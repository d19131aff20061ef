"""Mixed-effects logistic model of held-out correctness (condition, shuffle, init, encoder, LM fixed;
category and seed random) — see taxvlm.analysis.stats for the model choice.

Snakemake:
  input.predictions   list of predictions.tsv, in the order of params.runs
  params.runs         list of dicts with encoder, lm, init, condition, shuffle, seed
  output.summary      mixed_effects.txt (what was fitted, dropped factors, statsmodels summary)
  output.coefficients mixed_effects.tsv (term, effect, estimate, sd, sd_of, ci_low, ci_high)
  log[0]
"""

import logging

from taxvlm.analysis.stats import fit_mixed_effects, held_out_rows, write_mixed_effects
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
runs = [
    dict(run) | {"path": path} for run, path in zip(snakemake.params.runs, snakemake.input.predictions, strict=True)
]
fit = fit_mixed_effects(held_out_rows(runs))
write_mixed_effects(fit, snakemake.output.summary, snakemake.output.coefficients)
logging.info("%s on %d rows: %s; dropped %s", fit.method, fit.n, fit.formula, fit.dropped)
