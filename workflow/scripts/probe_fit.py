"""Linear probes on every cached run, layer, position and task; probe.tsv, the figure, the best-layer
table and the statement (taxvlm.analysis.probing). Snakemake: input.states (cache folders, in the order
of params.runs, the run keys), input.pairs; params.settings (config.probe); threads → output.runs,
summary, skipped, figure, table_csv, table_md, statement.
"""

from pathlib import Path

from taxvlm.analysis.probing import probe_stage
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
caches = [(dict(keys), Path(path)) for keys, path in zip(snakemake.params.runs, snakemake.input.states)]
outputs = {
    key: Path(snakemake.output[key])
    for key in ("runs", "summary", "skipped", "figure", "table_csv", "table_md", "statement")
}
probe_stage(caches, Path(snakemake.input.pairs), dict(snakemake.params.settings), outputs, snakemake.threads)
