"""Leaf and hypernym questions with seeded negatives.

Snakemake: input.concepts, input.pairs, input.hypernyms, params.questions → output[0] (questions.tsv).
"""


from taxvlm.data.questions import build_questions
from taxvlm.rulelog import rule_log
from taxvlm.settings.dataset import Questions

rule_log(snakemake.log[0])  # noqa: F821
build_questions(
    snakemake.input.concepts,
    snakemake.input.pairs,
    snakemake.input.hypernyms,
    Questions.from_config(snakemake.params.questions, "config.questions"),
    snakemake.output[0],
)
