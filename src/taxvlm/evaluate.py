"""Forced-choice Yes/No scoring of the test sets: log P(Yes) vs log P(No) at the answer position.

Fast path (`score_questions`), exact up to float rounding: questions are sorted by image; per batch
the shared prefix `[head] [image tokens] [the question tokens every question starts with]` runs once
per distinct image (`shared_prefix_forward`), and only the remaining question tokens run per question.
The LM head and a full-vocabulary log-softmax are computed at one position per question (prediction =
Yes iff log P(Yes) > log P(No); a tie → No). `score_questions_reference` is the plain
one-forward-per-question baseline the tests compare against.

For the calibrated decision rule (`taxvlm.decision`), every distinct question text is also scored once
with the image tokens left out (`score_without_image`: `[head] [question text]`, the same prompt
format), and predictions.tsv carries the prediction of every rule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from taxvlm.decision import decide, pair_id, pair_sizes
from taxvlm.features import flush_denormals_on_cpu, load_features, resolve_device
from taxvlm.io import read_tsv, write_tsv
from taxvlm.models.lms import (
    PromptFormat,
    build_prompt,
    common_prefix_len,
    decoder_forward,
    lm_logits,
    load_lm,
    pad_right,
    shared_prefix_forward,
    splice,
    twin_seed,
)
from taxvlm.models.projector import build_projector

log = logging.getLogger(__name__)

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
    for chunk in torch.argsort(image_index, stable=True).split(batch_size):
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


def evaluate_projector(
    features_path: Path,
    projector_path: Path,
    test_tables: dict[str, Path],
    lm_spec: dict[str, Any],
    lm_weights_dir: Path | None,
    init: str,
    seed: int,
    batch_size: int,
    out_path: Path,
    device: str = "auto",
) -> None:
    """Score every row of the test tables (keys `seen`/`unseen`/`leaf`) and write predictions.tsv.

    `init` recreates the training LM (the random twin is fixed per LM, see `twin_seed`); `init` and
    `seed` must match what `projector.pt` was trained with.
    """
    dev = resolve_device(device)
    flush_denormals_on_cpu(dev)
    ckpt = torch.load(projector_path, map_location="cpu", weights_only=True)
    if (ckpt["init"], ckpt["seed"]) != (init, seed):
        raise ValueError(
            f"{projector_path} was trained with init={ckpt['init']} seed={ckpt['seed']}, "
            f"not init={init} seed={seed}"
        )
    data = load_features(features_path)
    feats = data[ckpt["spec"]["features"]]
    index = {image_id: i for i, image_id in enumerate(data["image_ids"])}
    model, tokenizer = load_lm(lm_spec, lm_weights_dir, init, twin_seed(lm_spec), dev)
    prompt = build_prompt(tokenizer, bool(lm_spec.get("chat_template", False)))
    projector = build_projector(ckpt["spec"], ckpt["d_vis"], ckpt["d_lm"])
    projector.load_state_dict(ckpt["state_dict"])
    projector.to(dev).eval()

    tables = {name: table for name, path in test_tables.items() if not (table := read_tsv(path)).empty}
    if not tables:
        write_tsv(pd.DataFrame(columns=COLUMNS), out_path)
        return
    frames, t0 = [], time.perf_counter()
    with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
        texts = sorted({text for table in tables.values() for text in table["text"]})
        yes_noimage, no_noimage = score_without_image(model, prompt, texts, batch_size)
        margin_noimage = pd.Series((yes_noimage - no_noimage).numpy(), index=texts)
        for name, table in tables.items():
            logp_yes, logp_no = score_questions(
                model, prompt, projector, feats, [index[i] for i in table["image_id"]], list(table["text"]), batch_size
            )
            frames.append(
                table.assign(
                    test_set=name,
                    pair=table["question_id"].map(pair_id),
                    logp_yes=logp_yes.numpy(),
                    logp_no=logp_no.numpy(),
                    margin=(logp_yes - logp_no).numpy(),
                    margin_noimage=table["text"].map(margin_noimage),
                )
            )
    predictions = decide(pd.concat(frames, ignore_index=True))[COLUMNS]
    seconds = time.perf_counter() - t0
    log.info(
        "scored %d questions (%d texts without the image) in %.1fs (%.1f questions/s) on %s; %d rows have no "
        "pair partner on their image and keep the absolute prediction under every rule",
        len(predictions),
        len(texts),
        seconds,
        len(predictions) / max(seconds, 1e-9),
        dev,
        int((pair_sizes(predictions) == 1).sum()),
    )
    write_tsv(predictions, out_path)
