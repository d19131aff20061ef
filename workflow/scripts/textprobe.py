"""Text-only taxonomy probes (yes/no, caption, minimal pairs) of one LM and init (docs/protocol.md §12).

Snakemake:
  input.concepts, input.hypernyms   results/data/concepts.tsv, hypernyms.tsv (the words the probes use)
  input.questions               results/data/questions.tsv (its matched hypernym pairs are the items)
  input.lm_weights              optional local weights folder of the LM
  params.lm                     the LM's config spec (the random-init twin is the VLM runs' one,
                                `random_init_seed`; the probes use the tokenizer's chat template whenever
                                it has one, whatever `chat_template` says)
  params.probe                  config.analysis.textprobe (phrasings, max_pairs, seed, batch_size)
  wildcards.lm, wildcards.init
  output.per_item, output.summary   TSVs with leading lm and init columns
  log[0]
"""

import logging
import time

import torch

from taxvlm.analysis.textprobe import textprobe_job
from taxvlm.rulelog import rule_log
from taxvlm.settings.analysis import TextProbe
from taxvlm.specs import FrozenLM

rule_log(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)
start = time.perf_counter()
items, summary, prompt = textprobe_job(
    FrozenLM.from_config(snakemake.params.lm, snakemake.input.get("lm_weights"), snakemake.wildcards.init),
    snakemake.input,
    TextProbe.from_config(snakemake.params.probe, "config.analysis.textprobe"),
    {"lm": snakemake.wildcards.lm, "init": snakemake.wildcards.init},
    snakemake.output,
)
logging.info(
    "prompt %s; %d items in %.1f s\n%s",
    prompt.describe(),
    len(items),
    time.perf_counter() - start,
    summary[summary["scope"] == "all"].to_string(index=False),
)
