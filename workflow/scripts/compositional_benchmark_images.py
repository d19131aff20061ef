"""Snakemake script: the images table of a benchmark's scored views for this pipeline's encoder
(taxvlm.compositional.stage.benchmark_images). input.bench_items; params.image_root → output.images,
output.crops (the cropped regions)."""

from pathlib import Path

from taxvlm.compositional.stage import benchmark_images
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
benchmark_images(Path(sm.input.bench_items), Path(sm.params.image_root), Path(sm.output.images), Path(sm.output.crops))
