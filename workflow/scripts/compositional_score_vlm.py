"""Snakemake script: one trained run of the grid scored on the test images' hard negatives
(input.negatives + input.images: taxvlm.compositional.stage.score_vlm) or on a benchmark's items
(input.bench_items, on input.features of its views: score_vlm_benchmark). input.features/projector,
optional input.lm_weights; params.lm, params.batch_size; wildcards.init, wildcards.seed → output[0]."""

from pathlib import Path

import torch

from taxvlm.compositional.stage import score_vlm, score_vlm_benchmark
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)
lm_weights = sm.input.get("lm_weights")
run = {
    "lm": sm.params.lm,
    "lm_weights": Path(lm_weights) if lm_weights else None,
    "init": sm.wildcards.init,
    "seed": int(sm.wildcards.seed),
    "batch_size": sm.params.batch_size,
}
features, projector, out = Path(sm.input.features), Path(sm.input.projector), Path(sm.output[0])
if "bench_items" in sm.input.keys():
    score_vlm_benchmark(Path(sm.input.bench_items), features, projector, run, out)
else:
    score_vlm(Path(sm.input.negatives), Path(sm.input.images), features, projector, run, out)
