"""Leaf and hypernym questions with seeded negatives.

Snakemake: input.concepts, input.pairs, input.hypernyms, params.questions → output[0] (questions.tsv).
"""

import logging

from taxvlm.data.questions import build_questions

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
build_questions(
    snakemake.input.concepts,
    snakemake.input.pairs,
    snakemake.input.hypernyms,
    snakemake.params.questions,
    snakemake.output[0],
)
