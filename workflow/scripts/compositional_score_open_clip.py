"""Snakemake script: an open_clip model (optionally fine-tuned: input.model) scored by cosine on a
benchmark's items (input.bench_items) or on the test images' hard negatives (input.negatives + input.images);
params.spec, params.image_root → output[0] (taxvlm.compositional.stage.score_open_clip)."""

from pathlib import Path

import torch

from taxvlm.compositional.stage import score_open_clip
from taxvlm.rulelog import rule_log
from taxvlm.settings.compositional import OpenClipModel

rule_log(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)
inputs = sm.input
items = inputs.bench_items if "bench_items" in inputs.keys() else inputs.negatives
score_open_clip(
    Path(items),
    Path(sm.params.image_root),
    OpenClipModel.from_config(sm.params.spec, "config.compositional.open_clip"),
    Path(sm.output[0]),
    images_path=Path(inputs.images) if "images" in inputs.keys() else None,
    state_path=Path(inputs.model) if "model" in inputs.keys() else None,
)
