"""Forced-choice Yes/No scoring of the test sets: log P(Yes) vs log P(No) at the answer position.

Fast path (`score_questions`), exact up to float rounding: questions are sorted by image; per batch
the shared prefix `[head] [image tokens] [the question tokens every question starts with]` runs once
per distinct image (`shared_prefix_forward`), and only the remaining question tokens run per question.
The LM head and a full-vocabulary log-softmax are computed at one position per question (prediction =
Yes iff log P(Yes) > log P(No); a tie → No). `score_questions_reference` is the plain
one-forward-per-question baseline the tests compare against.
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

from taxvlm.features import flush_denormals_on_cpu, load_features, resolve_device
from taxvlm.io import read_tsv, write_tsv
from taxvlm.models.lms import (
    PromptFormat,
    build_prompt,
    common_prefix_len,
    lm_logits,
    load_lm,
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
    "image_id",
    "leaf",
    "kind",
    "asked",
    "answer",
    "logp_yes",
    "logp_no",
    "prediction",
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

    frames, t0, n = [], time.perf_counter(), 0
    for name, path in test_tables.items():
        table = read_tsv(path)
        if table.empty:
            continue
        with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
            logp_yes, logp_no = score_questions(
                model, prompt, projector, feats, [index[i] for i in table["image_id"]], list(table["text"]), batch_size
            )
        frame = table.assign(test_set=name, logp_yes=logp_yes.numpy(), logp_no=logp_no.numpy())
        frame["prediction"] = ["Yes" if y > n_ else "No" for y, n_ in zip(frame["logp_yes"], frame["logp_no"])]
        frames.append(frame[COLUMNS])
        n += len(table)
    log.info(
        "scored %d questions in %.1fs (%.1f questions/s) on %s",
        n,
        time.perf_counter() - t0,
        n / max(time.perf_counter() - t0, 1e-9),
        dev,
    )
    write_tsv(pd.concat(frames) if frames else pd.DataFrame(columns=COLUMNS), out_path)
