"""Text-only taxonomy probes (yes/no, caption, minimal pairs) of one LM and init (docs/protocol.md §12).

Snakemake:
  input.concepts, input.hypernyms   results/data/concepts.tsv, hypernyms.tsv (the words the probes use)
  input.questions               results/data/questions.tsv (its matched hypernym pairs are the items)
  input.lm_weights              optional local weights folder of the LM
  params.lm                     the LM's config spec (the random-init twin is the VLM runs' one,
                                `random_init_seed`; the probes use the tokenizer's chat template whenever
                                it has one, whatever `chat_template` says)
  params.probe                  config.analysis.textprobe: optional yesno, caption, minimal_pairs (phrasing
                                names), max_pairs, seed (default 0; draws the max_pairs subsample),
                                batch_size (default 32); other keys (e.g. lms) are ignored
  wildcards.lm, wildcards.init
  output.per_item, output.summary   TSVs with leading lm and init columns
  log[0]
"""

import logging
import time
from pathlib import Path

import torch

from taxvlm.analysis.textprobe import run_textprobe, write_textprobe
from taxvlm.models.lms import load_lm, twin_seed
from taxvlm.rulelog import rule_log

rule_log(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)
probe, spec = dict(snakemake.params.probe), dict(snakemake.params.lm)
weights = snakemake.input.get("lm_weights")
start = time.perf_counter()
model, tokenizer = load_lm(
    spec,
    Path(weights) if weights else None,
    snakemake.wildcards.init,
    twin_seed(spec),
    "cuda" if torch.cuda.is_available() else "cpu",
)
logging.info("loaded %s (%s) in %.1f s", snakemake.wildcards.lm, snakemake.wildcards.init, time.perf_counter() - start)
items, summary, prompt = run_textprobe(
    model,
    tokenizer,
    snakemake.input.concepts,
    snakemake.input.hypernyms,
    snakemake.input.questions,
    probe,
    int(probe.get("batch_size", 32)),
)
write_textprobe(
    items,
    summary,
    {"lm": snakemake.wildcards.lm, "init": snakemake.wildcards.init},
    snakemake.output.per_item,
    snakemake.output.summary,
)
logging.info(
    "prompt %s; %d items in %.1f s\n%s",
    prompt.describe(),
    len(items),
    time.perf_counter() - start,
    summary[summary["scope"] == "all"].to_string(index=False),
)
