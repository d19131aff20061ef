"""Snakemake script: accuracy per model and type on the hard negatives and on the benchmarks, and the
adaptive margins along training (taxvlm.compositional.stage.collect / collect_thetas).
input.scored/curves/benchmarks with the model names in params (same order)."""

from pathlib import Path

from taxvlm.compositional.stage import collect, collect_thetas
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
collect(dict(zip(sm.params.scored, map(Path, sm.input.scored))), Path(sm.output.accuracy))
collect_thetas(dict(zip(sm.params.curves, map(Path, sm.input.curves))), Path(sm.output.thetas))
collect(dict(zip(sm.params.benchmarks, map(Path, sm.input.benchmarks))), Path(sm.output.benchmarks))
