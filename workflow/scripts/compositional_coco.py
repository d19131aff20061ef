"""Snakemake script: COCO caption annotations → images and captions tables (the faithful mode's real
data; taxvlm.compositional.stage.coco_captions). input.annotations; params.member, params.image_root."""

from pathlib import Path

from taxvlm.compositional.stage import coco_captions
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
sm = snakemake  # noqa: F821
coco_captions(
    Path(sm.input.annotations), sm.params.member, sm.params.image_root, Path(sm.output.images), Path(sm.output.captions)
)
