"""Stack the per-(LM, init) text-probe summaries into one table.

Snakemake: input.summaries (list of TSVs) → output[0].
"""


import pandas as pd

from taxvlm.io import read_tsv, write_tsv
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
frames = [read_tsv(path) for path in snakemake.input.summaries]
write_tsv(pd.concat(frames, ignore_index=True), snakemake.output[0])
