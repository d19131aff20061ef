"""Snakemake script: one benchmark's files → items.tsv (taxvlm.compositional.benchmarks).
input.files (in the order of params.spec.files' keys), input.nltk_data (WordNet: ARO order's tagger); params.spec (the benchmark's config entry), params.seed.
"""

from pathlib import Path

from taxvlm.compositional.stage import benchmark_items
from taxvlm.rulelog import rule_log
from taxvlm.settings.compositional import Benchmark

rule_log(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
files = dict(zip(sm.params.spec["files"], map(Path, sm.input.files)))
benchmark_items(
    sm.wildcards.benchmark,
    Benchmark.from_config(sm.params.spec, f"config.compositional.benchmarks.{sm.wildcards.benchmark}"),
    files,
    int(sm.params.seed),
    Path(sm.output[0]),
    Path(sm.input.nltk_data),
)
