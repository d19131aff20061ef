"""Snakemake script: the compositional figures and tables (taxvlm.compositional.report)."""

from taxvlm.compositional import report
from taxvlm.io import read_tsv
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
accuracy = report.read_accuracy(sm.input.accuracy)
report.accuracy_figure(accuracy, sm.output.accuracy)
report.taxonomic_figure(accuracy, sm.output.taxonomic)
report.theta_figure(read_tsv(sm.input.thetas), sm.output.thetas)
report.accuracy_table(accuracy, sm.output.table_csv, sm.output.table_md)
report.accuracy_table(report.read_accuracy(sm.input.benchmarks), sm.output.bench_csv, sm.output.bench_md)
