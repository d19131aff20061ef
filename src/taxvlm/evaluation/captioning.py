"""Captioning evaluation of caption-trained projectors (LiMBeR): greedy decoding and CIDEr-D / BLEU-4.

Prompt (plain, LiMBeR's): `[head] [image tokens] A picture of`, then the caption. As in the yes/no
format (`taxvlm.models.lms`), the image goes after the first token: head = BOS when the tokenizer adds
one, else the first token of the prompt text (`A` for SmolLM2), which then leaves the text after the
image. So the image sits at position 1 under both objectives. `taxvlm.models.lms.caption_prompt` builds it.

Decoding (`greedy_caption_ids`): HF `generate(inputs_embeds=..., do_sample=False)` once per batch of
images. Every prefix `[head][image][prompt]` has the same length (k image tokens + the same prompt), so
the attention mask is all ones and no row is padded: each row attends to exactly what a decode of that
image alone would (`generate_caption_ids_reference`, one image at a time, is the tests' oracle). A
hand-written KV-cache decoder that dropped finished rows was measured against it and removed: on
SmolLM2-135M it was no faster (`perf/results-captioning.md`), and issue 31 kept it only at >= 1.5x.

Scoring (`score_captions`): pycocoevalcap's scorers (pure Python; the maintained COCO caption code).
- `Cider` there is **CIDEr-D**, the variant the COCO server reports (Vedantam et al. 2015, §4.2):
  n-gram counts clipped to the reference's, a Gaussian length penalty (σ = 6), ×10, no stemming; its
  idf comes from the references of the scored set, so scores compare across runs on the same test
  set only. Output name: `cider_d`.
- `Bleu(4)`: corpus BLEU-4 (n-gram counts pooled over images, brevity penalty from the closest
  reference length). Output name: `bleu4`.
- Tokenisation: pycocoevalcap's `PTBTokenizer` runs Stanford CoreNLP through Java, which this project
  does not ship. Instead `scoring_tokens` lowercases, keeps runs of letters/digits (with inner
  apostrophes: `dog's`), and drops everything else, like PTBTokenizer's punctuation removal. It differs
  from PTB on clitics (`dog's` stays one token) and hyphens (split), so numbers are close to, not
  identical with, COCO-server numbers.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from taxvlm.devices import flush_denormals_on_cpu, resolve_device
from taxvlm.io import read_tsv, write_tsv
from taxvlm.models.lms import CAPTION_PROMPT, caption_prompt, splice
from taxvlm.evaluation.runs import load_run
from taxvlm.specs import TrainedRun

log = logging.getLogger(__name__)

METRICS = ("cider_d", "bleu4")
CAPTION_COLUMNS = ["image_id", "reference", "generated", "cider_d"]
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def _stop_ids(tokenizer: Any) -> list[int]:
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token: a caption could never end before max_new_tokens")
    return [tokenizer.eos_token_id]


@torch.inference_mode()
def greedy_caption_ids(
    model: nn.Module,
    head: list[int],
    prompt_ids: list[int],
    projector: nn.Module,
    features: torch.Tensor,
    image_index: Sequence[int],
    max_new_tokens: int,
    batch_size: int,
    eos_ids: Sequence[int],
) -> list[list[int]]:
    """Greedy token ids per image `features[image_index[i]]`, without the final EOS (module docstring)."""
    dev = next(projector.parameters()).device
    out: list[list[int]] = []
    for chunk in torch.as_tensor(image_index, dtype=torch.long).split(batch_size):
        text = torch.tensor(prompt_ids, dtype=torch.long).expand(len(chunk), len(prompt_ids))
        embeds = splice(model, head, projector(features[chunk].to(dev).float()), text)
        out += _generate(model, embeds, max_new_tokens, eos_ids)
    return out


def _generate(model: nn.Module, embeds: torch.Tensor, max_new_tokens: int, eos_ids: Sequence[int]) -> list[list[int]]:
    """Greedy continuations of the prefix embeddings `[B, L, d]`, each cut before its first stop token
    (rows that ended early carry padding until the batch's last row ends)."""
    ids = model.generate(
        inputs_embeds=embeds,
        attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device),
        do_sample=False,
        max_new_tokens=max_new_tokens,
        eos_token_id=list(eos_ids),
        pad_token_id=eos_ids[0],
    ).tolist()
    return [row[: next((n for n, token in enumerate(row) if token in eos_ids), len(row))] for row in ids]


@torch.inference_mode()
def generate_caption_ids_reference(
    model: nn.Module,
    head: list[int],
    prompt_ids: list[int],
    projector: nn.Module,
    features: torch.Tensor,
    image_index: Sequence[int],
    max_new_tokens: int,
    eos_ids: Sequence[int],
) -> list[list[int]]:
    """The same captions one image at a time: what batching must not change."""
    dev = next(projector.parameters()).device
    text = torch.tensor([prompt_ids], dtype=torch.long)
    embeds = (splice(model, head, projector(features[i : i + 1].to(dev).float()), text) for i in image_index)
    return [_generate(model, prefix, max_new_tokens, eos_ids)[0] for prefix in embeds]


def greedy_captions(
    model: nn.Module,
    tokenizer: Any,
    head: list[int],
    prompt_ids: list[int],
    projector: nn.Module,
    features: torch.Tensor,
    image_index: Sequence[int],
    max_new_tokens: int,
    batch_size: int,
) -> list[str]:
    """Greedy captions of `features[image_index[i]]`, decoded without special tokens (`printable`)."""
    ids = greedy_caption_ids(
        model, head, prompt_ids, projector, features, image_index, max_new_tokens, batch_size, _stop_ids(tokenizer)
    )
    return [printable(tokenizer.decode(row, skip_special_tokens=True)) for row in ids]


def printable(text: str) -> str:
    """`text` on one line: whitespace runs (tabs, newlines) become one space, other unprintable
    characters (an untrained LM's stray control bytes) U+FFFD, so a caption is one TSV field."""
    return "".join(c if c.isprintable() else "\ufffd" for c in " ".join(text.split()))


def scoring_tokens(text: str) -> str:
    """The caption as the space-joined lowercase words the scorers split on (module docstring)."""
    return " ".join(_WORD.findall(text.lower()))


def score_captions(
    references: dict[str, list[str]], generated: dict[str, str]
) -> tuple[dict[str, float], dict[str, float]]:
    """Corpus CIDEr-D and BLEU-4 of `generated` (one caption per image id) against `references`
    (one or more per image id), and the per-image CIDEr-D."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    if set(references) != set(generated):
        missing = sorted(set(references) ^ set(generated))[:5]
        raise ValueError(f"references and generated captions name different images (e.g. {missing})")
    ids = sorted(references)
    gts = {i: [scoring_tokens(r) for r in references[i]] for i in ids}
    res = {i: [scoring_tokens(generated[i])] for i in ids}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, per_image = Cider().compute_score(gts, res)
    return {"cider_d": float(cider), "bleu4": float(bleu[3])}, dict(zip(ids, map(float, per_image)))


def read_references(path: Path, known: set[str] | None = None) -> dict[str, list[str]]:
    """Reference captions per image id from a TSV with `image_id` and `caption` (several rows per image
    allowed). Fails naming the file on no rows, an empty caption, or image ids outside `known`."""
    table = read_tsv(path)
    missing = {"image_id", "caption"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected image_id and caption")
    if table.empty:
        raise ValueError(f"{path}: no reference captions")
    empty = table.loc[table["caption"].str.strip() == "", "image_id"]
    if len(empty):
        raise ValueError(f"{path}: empty caption for image {empty.iloc[0]!r} ({len(empty)} empty in all)")
    unknown = sorted(set(table["image_id"]) - known) if known is not None else []
    if unknown:
        raise ValueError(f"{path}: {len(unknown)} image id(s) have no cached features, e.g. {unknown[:5]}")
    return {image: list(group["caption"]) for image, group in table.groupby("image_id", sort=True)}


def caption_run(
    run: TrainedRun,
    keys: dict[str, Any],
    references_path: Path,
    max_new_tokens: int,
    batch_size: int,
    captions_out: Path,
    scores_out: Path,
    device: str = "auto",
    prompt_text: str = CAPTION_PROMPT,
) -> None:
    """Caption every image of the reference table with one run's projector; write `captions.tsv`
    (one row per image × reference: image_id, reference, generated, the image's cider_d) and
    `caption_scores.tsv` (the run's `keys`, metric, value, n_images)."""
    dev = resolve_device(device)
    flush_denormals_on_cpu(dev)
    loaded = load_run(run, dev)
    index, tokenizer = loaded.index, loaded.tokenizer
    references = read_references(references_path, set(index))
    head, prompt_ids = caption_prompt(tokenizer, prompt_text)
    images = list(references)
    t0 = time.perf_counter()
    with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
        captions = greedy_captions(
            loaded.model,
            tokenizer,
            head,
            prompt_ids,
            loaded.projector,
            loaded.feats,
            [index[i] for i in images],
            max_new_tokens,
            batch_size,
        )
    seconds = time.perf_counter() - t0
    log.info("captioned %d images in %.1fs (%.1f captions/s) on %s", len(images), seconds, len(images) / seconds, dev)
    generated = dict(zip(images, captions))
    corpus, per_image = score_captions(references, generated)
    rows = [
        {"image_id": i, "reference": r, "generated": generated[i], "cider_d": per_image[i]}
        for i in images
        for r in sorted(references[i])
    ]
    write_tsv(pd.DataFrame(rows, columns=CAPTION_COLUMNS), captions_out)
    scores = [{**keys, "metric": m, "value": corpus[m], "n_images": len(images)} for m in METRICS]
    write_tsv(pd.DataFrame(scores), scores_out)
    log.info("scores: %s", corpus)
