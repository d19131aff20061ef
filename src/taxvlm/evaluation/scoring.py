"""The scoring primitives shared by training (its validation curve) and evaluation.

- `score_questions`: forced-choice log P(Yes), log P(No) at the answer position. Fast path, exact up
  to float rounding: questions are sorted by image; per batch the shared prefix `[head] [image tokens]
  [the question tokens every question starts with]` runs once per distinct image
  (`shared_prefix_forward`), and only the remaining question tokens run per question; the LM head and
  a full-vocabulary log-softmax are computed at one position per question. `score_questions_reference`
  is the plain one-forward-per-question baseline the tests compare against.
- `score_without_image`: the same prompt with the image tokens left out, once per question text (the
  calibrated decision rule).
- `score_continuations` / `score_continuations_without_image`: summed log-probabilities of a
  continuation (a name after `[head] [image] A picture of`), with and without the image: naming by
  likelihood; `continuation_logits` is shared with the training loss.

A module of its own so that editing the evaluation jobs (`taxvlm.evaluation.readouts`) reruns only them, while
editing how a question is scored reruns training too (its validation curve uses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from taxvlm.evaluation.decision import decide, pair_id, pair_sizes
from taxvlm.models.lms import (
    PromptFormat,
    caption_prompt,
    common_prefix_len,
    decoder_forward,
    lm_logits,
    pad_right,
    shared_prefix_forward,
    splice,
)
from taxvlm.progress import Progress

# predictions.tsv and naming.tsv
COLUMNS = [
    "test_set",
    "row_id",
    "question_id",
    "pair",
    "image_id",
    "leaf",
    "kind",
    "asked",
    "answer",
    "logp_yes",
    "logp_no",
    "margin",
    "margin_noimage",
    "prediction",
    "prediction_paired",
    "prediction_paired_calibrated",
]


def continuation_logits(
    model: nn.Module,
    head: list[int],
    image_embeds: torch.Tensor,
    group: torch.Tensor,
    prompt_ids: list[list[int]],
    target_ids: list[list[int]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LM logits `[T, V]` at the positions that predict each row's target tokens, the row of each
    position and the target token there. Row i is `[head] [image_embeds[group[i]]] [prompt_ids[i]]
    [target_ids[i]]`; the prompt is never scored (no logits there), and rows about one image share
    its prefix (`shared_prefix_forward`)."""
    shared = common_prefix_len(prompt_ids)
    suffixes = [q[shared:] + a[:-1] for q, a in zip(prompt_ids, target_ids)]
    hidden, _ = shared_prefix_forward(model, head, image_embeds, prompt_ids[0][:shared], group, suffixes)
    rows, cols, targets = [], [], []
    for i, (q, a) in enumerate(zip(prompt_ids, target_ids)):
        start = len(q) - shared - 1  # the suffix position that predicts the first target token
        rows += [i] * len(a)
        cols += range(start, start + len(a))
        targets += a
    dev = hidden.device
    rows_t = torch.tensor(rows, device=dev)
    logits = lm_logits(model, hidden[rows_t, torch.tensor(cols, device=dev)])
    return logits, rows_t, torch.tensor(targets, device=dev)


def _row_sums(logits: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Summed log-probability of the targets per row."""
    logp = torch.log_softmax(logits.float(), dim=-1).gather(1, targets[:, None])[:, 0]
    return torch.zeros(n_rows, device=logp.device).index_add_(0, rows, logp)


@torch.inference_mode()
def score_continuations(
    model: nn.Module,
    head: list[int],
    prompt_ids: list[int],
    projector: nn.Module,
    features: torch.Tensor,
    image_index: Sequence[int],
    continuations: Sequence[list[int]],
    batch_size: int = 64,
) -> torch.Tensor:
    """log P(continuation i | `[head] [image features[image_index[i]]] [prompt_ids]`), summed over its
    tokens; rows are batched by image so each image prefix runs once per batch."""
    dev = next(projector.parameters()).device
    image_index = torch.as_tensor(image_index, dtype=torch.long)
    scores = torch.empty(len(continuations))
    chunks = torch.argsort(image_index, stable=True).split(batch_size)
    for chunk in Progress(chunks, desc="score", unit="batch", leave=False):
        images, group = torch.unique(image_index[chunk], return_inverse=True)
        image_embeds = projector(features[images].to(dev).float())
        rows = chunk.tolist()
        logits, row_of, targets = continuation_logits(
            model, head, image_embeds, group, [prompt_ids] * len(rows), [list(continuations[i]) for i in rows]
        )
        scores[chunk] = _row_sums(logits, row_of, targets, len(rows)).cpu()
    return scores


@torch.inference_mode()
def score_continuations_without_image(
    model: nn.Module, head: list[int], prompt_ids: list[int], continuations: Sequence[list[int]], batch_size: int = 64
) -> torch.Tensor:
    """log P(continuation | `[head] [prompt_ids]`): the same prompt with the image tokens left out;
    right-padded rows, so causal attention keeps them exact."""
    dev = next(model.parameters()).device
    scores = torch.empty(len(continuations))
    start_of = len(head) + len(prompt_ids) - 1  # the position that predicts a continuation's first token
    for start in range(0, len(continuations), batch_size):
        batch = [list(c) for c in continuations[start : start + batch_size]]
        ids, _ = pad_right([head + prompt_ids + c for c in batch])
        hidden, _ = decoder_forward(model, model.get_input_embeddings()(ids.to(dev)))
        rows = torch.tensor([i for i, c in enumerate(batch) for _ in c], device=dev)
        cols = torch.tensor([start_of + j for c in batch for j in range(len(c))], device=dev)
        targets = torch.tensor([t for c in batch for t in c], device=dev)
        logits = lm_logits(model, hidden[rows, cols])
        scores[start : start + len(batch)] = _row_sums(logits, rows, targets, len(batch)).cpu()
    return scores


def naming_phrases(concepts: pd.DataFrame, hypernyms: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(kind, asked) → the name a naming row scores, with its article: `an owl`, `a car part`, `food`
    (leaves by their surface form, hypernyms by their question form)."""
    phrases = {("leaf", r.concept): f"{r.article} {r.name}" for r in concepts.itertuples()}
    phrases |= {("hypernym", r.hypernym): f"{r.article} {r.question_form}" for r in hypernyms.itertuples()}
    return {key: " ".join(text.split()) for key, text in phrases.items()}


def naming_frame(
    model: nn.Module,
    tokenizer: Any,
    projector: nn.Module,
    features: torch.Tensor,
    index: dict[str, int],
    tables: dict[str, pd.DataFrame],
    phrases: dict[tuple[str, str], str],
    batch_size: int,
    noimage: dict[str, float] | None = None,
) -> pd.DataFrame:
    """The naming rows of `tables` (test set name → table) in naming.tsv's columns (module docstring).
    `noimage` caches the no-image log-likelihood per name across calls (filled here)."""
    head, prompt_ids = caption_prompt(tokenizer)
    frame = pd.concat([t.assign(test_set=name) for name, t in tables.items()], ignore_index=True)
    frame = frame.assign(pair=frame["question_id"].map(pair_id))
    frame = frame[pair_sizes(frame) == 2].reset_index(drop=True)
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    missing = sorted({(k, a) for k, a in zip(frame["kind"], frame["asked"])} - set(phrases))
    if missing:
        raise ValueError(f"naming: no name for (kind, asked) {missing[:5]} in concepts.tsv / hypernyms.tsv")
    names = [phrases[(k, a)] for k, a in zip(frame["kind"], frame["asked"])]
    ids = {name: tokenizer(" " + name, add_special_tokens=False)["input_ids"] for name in sorted(set(names))}
    noimage = {} if noimage is None else noimage
    todo = [name for name in ids if name not in noimage]
    if todo:
        scores = score_continuations_without_image(model, head, prompt_ids, [ids[n] for n in todo], batch_size)
        noimage.update(zip(todo, scores.tolist()))
    image_index = [index[i] for i in frame["image_id"]]
    loglik = score_continuations(
        model, head, prompt_ids, projector, features, image_index, [ids[n] for n in names], batch_size
    )
    frame = frame.assign(
        logp_yes=float("nan"),
        logp_no=float("nan"),
        margin=loglik.numpy(),
        margin_noimage=np.array([noimage[n] for n in names], dtype=np.float32),
    )
    return decide(frame).assign(prediction="")[COLUMNS]


@torch.inference_mode()
def score_questions(
    model: nn.Module,
    prompt: PromptFormat,
    projector: nn.Module,
    features: torch.Tensor,
    image_index: Sequence[int],
    questions: Sequence[str],
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log P(Yes), log P(No)) per question; question i is about image `features[image_index[i]]`."""
    dev = next(projector.parameters()).device
    ids = [prompt.question_ids(q) for q in questions]
    shared = common_prefix_len(ids)
    image_index = torch.as_tensor(image_index, dtype=torch.long)
    yes, no = prompt.choice_ids
    logp = torch.empty(len(ids), 2)
    chunks = torch.argsort(image_index, stable=True).split(batch_size)
    for chunk in Progress(chunks, desc="score", unit="batch", leave=False):
        images, group = torch.unique(image_index[chunk], return_inverse=True)
        image_embeds = projector(features[images].to(dev).float())
        suffixes = [ids[i][shared:] for i in chunk.tolist()]
        hidden, lengths = shared_prefix_forward(model, prompt.head, image_embeds, ids[0][:shared], group, suffixes)
        last = hidden[torch.arange(len(chunk), device=dev), lengths.to(dev) - 1]
        logp[chunk] = torch.log_softmax(lm_logits(model, last).float(), dim=-1)[:, [yes, no]].cpu()
    return logp[:, 0], logp[:, 1]


@torch.inference_mode()
def score_questions_reference(
    model: nn.Module,
    prompt: PromptFormat,
    projector: nn.Module,
    features: torch.Tensor,
    image_index: Sequence[int],
    questions: Sequence[str],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same scores from one plain full forward (`model(inputs_embeds=...)`) per question."""
    dev = next(projector.parameters()).device
    yes, no = prompt.choice_ids
    logp = torch.empty(len(questions), 2)
    for i, (image, question) in enumerate(zip(image_index, questions)):
        text = torch.tensor([prompt.question_ids(question)])
        embeds = splice(model, prompt.head, projector(features[image : image + 1].to(dev).float()), text)
        logits = model(inputs_embeds=embeds).logits[0, -1]
        logp[i] = torch.log_softmax(logits.float(), dim=-1)[[yes, no]].cpu()
    return logp[:, 0], logp[:, 1]


@torch.inference_mode()
def score_without_image(
    model: nn.Module, prompt: PromptFormat, questions: Sequence[str], batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log P(Yes), log P(No)) per question from `[head] [question text]`: the prompt with the image
    tokens left out. Rows are right-padded, so causal attention keeps them exact (`decoder_forward`)."""
    dev = next(model.parameters()).device
    yes, no = prompt.choice_ids
    logp = torch.empty(len(questions), 2)
    for start in range(0, len(questions), batch_size):
        ids, lengths = pad_right([prompt.head + prompt.question_ids(q) for q in questions[start : start + batch_size]])
        hidden, _ = decoder_forward(model, model.get_input_embeddings()(ids.to(dev)))
        last = hidden[torch.arange(len(ids), device=dev), lengths.to(dev) - 1]
        logp[start : start + len(ids)] = torch.log_softmax(lm_logits(model, last).float(), dim=-1)[:, [yes, no]].cpu()
    return logp[:, 0], logp[:, 1]
