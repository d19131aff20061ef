"""Snakemake script: one trained run of the grid scored on the test images' hard negatives
(input.negatives + input.images: taxvlm.compositional.stage.score_vlm) or on a benchmark's items
(input.bench_items, on input.features of its views: score_vlm_benchmark). input.features/projector,
optional input.lm_weights; params.lm, params.batch_size; wildcards.init, wildcards.seed → output[0]."""

from pathlib import Path

import torch

from taxvlm.compositional.stage import score_vlm, score_vlm_benchmark
from taxvlm.rulelog import rule_log
from taxvlm.specs import trained_run

sm = snakemake  # noqa: F821
rule_log(sm.log[0])
torch.set_num_threads(sm.threads)
run = trained_run(sm.params.lm, sm.input.get("lm_weights"), sm.wildcards, sm.input.projector, sm.input.features)
out = Path(sm.output[0])
if "bench_items" in sm.input.keys():
    score_vlm_benchmark(Path(sm.input.bench_items), run, sm.params.batch_size, out)
else:
    score_vlm(Path(sm.input.negatives), Path(sm.input.images), run, sm.params.batch_size, out)
