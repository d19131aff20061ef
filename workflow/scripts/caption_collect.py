"""Stack the caption runs' scores and tabulate CIDEr-D / BLEU-4 means with t-based seed CIs.

Snakemake: input.scores (list of caption_scores.tsv) → output.scores (results/analysis/caption_scores.tsv),
output.csv and output.md (the captioning table); log[0].
"""

import logging

from taxvlm.analysis.captioning import caption_table, caption_table_markdown, collect_caption_scores
from taxvlm.analysis.tables import write_table
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
scores = collect_caption_scores(list(snakemake.input.scores), snakemake.output.scores)
table = caption_table(scores)
write_table(table, snakemake.output.csv, snakemake.output.md, caption_table_markdown(table))
logging.info("%d score rows, %d table rows", len(scores), len(table))
