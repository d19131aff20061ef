"""The training objectives and their loss; the fast paths of a training step.

Train the projector through a frozen LM on cached image features; checkpointed and resumable.

Fast paths: the encoder never runs (features are cached), the LM's weights get no gradients
(`requires_grad=False`; only activations are back-propagated to the projector), the LM head is
applied only at the answer positions instead of producing full-vocabulary logits everywhere, and rows
about the same image share one prefix computation. Batching (`training.batching`): the default `rows`
keeps i.i.d. row batches, which run in one pass; `images` puts a few images with all their rows in a
batch and runs it packed (`taxvlm.models.packed`: one sequence per image, its prefix followed by all
its rows' suffixes under a block mask, one decoder pass instead of the two-pass shared prefix that
scoring keeps). An LM whose attention cannot take that mask (`packing_refusal`, decided once per job)
trains with `rows` instead, with one warning naming the LM and the reason; `train_config.json`
records the batching that ran (`batching`).

Objectives (a run's `objective`; one loop, one loss): a training row is (prompt ids after the image,
target ids), and the loss is the mean next-token cross-entropy over the target tokens only (the
prompt is masked by never computing logits there; `continuation_logits`).
- `yesno` (`train.tsv`): prompt = the question (`taxvlm.models.lms` format), target = ` Yes`/` No`
  + end token;
- `caption` (`train_captions.tsv`, LiMBeR): prompt = `A picture of` after the image
  (`taxvlm.models.lms.caption_prompt`; plain text whatever the LM's `chat_template`, as LiMBeR prompts),
  target = ` {caption}` + EOS.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from taxvlm.data.captions import caption_target
from taxvlm.grid import OBJECTIVES
from taxvlm.models.lms import CAPTION_PROMPT, build_prompt, caption_prompt
from taxvlm.models.packed import packed_continuation_logits
from taxvlm.evaluation.scoring import continuation_logits
from taxvlm.settings.models import LMSpec


def answer_losses(
    model: nn.Module,
    head: list[int],
    image_embeds: torch.Tensor,
    group: torch.Tensor,
    question_ids: list[list[int]],
    answer_ids: list[list[int]],
    sizes: list[int],
    packed: bool = False,
) -> list[torch.Tensor]:
    """`answer_loss` of consecutive blocks of `sizes` rows (the members of a fused step) from one LM
    pass: each block's mean over its own target tokens, so each member's gradient is its unfused one.
    `packed`: one packed pass (`batching: images`) instead of the two-pass shared prefix; same logits."""
    forward = packed_continuation_logits if packed else continuation_logits
    logits, _, targets = forward(model, head, image_embeds, group, question_ids, answer_ids)
    tokens = [sum(len(a) for a in block) for block in _blocks(answer_ids, sizes)]
    return [F.cross_entropy(lg.float(), t) for lg, t in zip(logits.split(tokens), targets.split(tokens))]


def _blocks(items: list[Any], sizes: list[int]) -> list[list[Any]]:
    """`items` cut into consecutive blocks of `sizes`."""
    ends = np.cumsum(sizes).tolist()
    return [items[end - n : end] for n, end in zip(sizes, ends)]


def answer_loss(
    model: nn.Module,
    head: list[int],
    image_embeds: torch.Tensor,
    group: torch.Tensor,
    question_ids: list[list[int]],
    answer_ids: list[list[int]],
) -> torch.Tensor:
    """Mean next-token cross-entropy over the target tokens (+ end token) only; the prompt is masked
    by never computing logits there. Row i is `[head] [image_embeds[group[i]]] [question_ids[i]]
    [answer_ids[i]]` (a question and its answer, or the caption prompt and the caption); rows about the
    same image share its prefix computation (`shared_prefix_forward`)."""
    return answer_losses(model, head, image_embeds, group, question_ids, answer_ids, [len(question_ids)])[0]


def training_ids(
    rows: pd.DataFrame, tokenizer: Any, lm_spec: LMSpec, objective: str
) -> tuple[list[int], list[list[int]], list[list[int]], dict[str, Any]]:
    """(head before the image, prompt ids and target ids per training row, a JSON-able description of
    the format) for `objective` (module docstring)."""
    if objective == "yesno":
        prompt = build_prompt(tokenizer, lm_spec.chat_template)
        by_text = {text: prompt.question_ids(text) for text in sorted(set(rows["text"]))}
        answers = [prompt.answers[a] for a in rows["answer"]]
        return prompt.head, [by_text[t] for t in rows["text"]], answers, prompt.describe()
    if objective == "caption":
        if tokenizer.eos_token_id is None:
            raise ValueError("the caption objective needs an EOS token; the tokenizer has none")
        head, prompt_ids = caption_prompt(tokenizer)
        eos = [tokenizer.eos_token_id]
        targets = {
            c: tokenizer(caption_target(c), add_special_tokens=False)["input_ids"] + eos
            for c in sorted(set(rows["caption"]))
        }
        described = {
            "head": head, "prompt": CAPTION_PROMPT, "prompt_ids": prompt_ids, "target": " {caption}", "end": eos
        }
        return head, [prompt_ids] * len(rows), [targets[c] for c in rows["caption"]], described
    raise ValueError(f"objective is {objective!r}; expected one of {list(OBJECTIVES)}")


def batch_loss(
    model: nn.Module,
    head: list[int],
    projector: nn.Module,
    feats: torch.Tensor,
    image_idx: torch.Tensor,
    question_ids: list[list[int]],
    answer_ids: list[list[int]],
) -> torch.Tensor:
    """`answer_loss` of one batch from the feature cache: each distinct image is projected once (bf16
    autocast on GPU); row i is about image `feats[image_idx[i]]`. The fused step with one member."""
    return fused_batch_losses(model, head, [projector], feats, [image_idx], [question_ids], [answer_ids])[0]


def fused_batch_losses(
    model: nn.Module,
    head: list[int],
    projectors: list[nn.Module],
    feats: torch.Tensor,
    image_idx: list[torch.Tensor],
    question_ids: list[list[list[int]]],
    answer_ids: list[list[list[int]]],
    packed: bool = False,
) -> list[torch.Tensor]:
    """`batch_loss` of G projectors' batches (member g: `projectors[g]` on its rows `image_idx[g]`,
    `question_ids[g]`, `answer_ids[g]`) stacked along the batch dimension into one LM forward; one
    backward of the sum serves all, since the projectors share no parameter. `packed`: `answer_losses`."""
    dev = next(projectors[0].parameters()).device
    embeds, groups, offset = [], [], 0
    with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
        for projector, idx in zip(projectors, image_idx):
            images, group = torch.unique(idx, return_inverse=True)
            embeds.append(projector(feats[images].to(dev).float()))
            groups.append(group + offset)
            offset += len(images)
        flat_q = [q for member in question_ids for q in member]
        flat_a = [a for member in answer_ids for a in member]
        sizes = [len(member) for member in question_ids]
        return answer_losses(model, head, torch.cat(embeds), torch.cat(groups), flat_q, flat_a, sizes, packed)
