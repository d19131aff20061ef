"""Example test images with their reference captions and the captions of one run per encoder × LM × init.

Snakemake: input.captions (captions.tsv per example run, in the order of params.runs), input.images
(results/data/images.tsv); params.runs (their keys), params.n_images → output[0] (PNG); log[0].
"""

import logging

from taxvlm.analysis.captioning import caption_figure, run_label
from taxvlm.io import read_tsv
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
examples = [
    (run_label(run), read_tsv(path))
    for run, path in zip(snakemake.params.runs, snakemake.input.captions, strict=True)
]
caption_figure(examples, read_tsv(snakemake.input.images), snakemake.output[0], int(snakemake.params.n_images))
logging.info("wrote %s", snakemake.output[0])
