"""Text-only taxonomy probes (yes/no and minimal pairs) of one LM and init (protocol §7, issue 8).

Snakemake:
  input.concepts, input.pairs   results/data/concepts.tsv, pairs.tsv
  input.lm_weights              optional local weights folder of the LM
  params.lm                     the LM's config spec (`chat_template: true` turns the template on; the
                                random-init twin is the VLM runs' one, `random_init_seed`)
  params.probe                  config.analysis.textprobe: optional yesno, minimal_pairs (phrasing names),
                                max_pairs, seed (default 0; draws the foil hypernyms), batch_size
                                (default 32); other keys (e.g. lms) are ignored
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

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
torch.set_num_threads(snakemake.threads)
probe, spec = dict(snakemake.params.probe), dict(snakemake.params.lm)
seed, weights = int(probe.get("seed", 0)), snakemake.input.get("lm_weights")
start = time.perf_counter()
model, tokenizer = load_lm(
    spec,
    Path(weights) if weights else None,
    snakemake.wildcards.init,
    twin_seed(spec),
    "cuda" if torch.cuda.is_available() else "cpu",
)
logging.info("loaded %s (%s) in %.1f s", snakemake.wildcards.lm, snakemake.wildcards.init, time.perf_counter() - start)
items, summary = run_textprobe(
    model,
    tokenizer,
    snakemake.input.concepts,
    snakemake.input.pairs,
    probe,
    seed,
    bool(spec.get("chat_template", False)),
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
    "%d items in %.1f s\n%s",
    len(items),
    time.perf_counter() - start,
    summary[summary["scope"] == "all"].to_string(index=False),
)
