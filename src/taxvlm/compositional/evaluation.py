"""Compositional evaluation, SugarCrepe-style: an item is correct when its true caption scores above
its hard negative (strictly; a tie is wrong). Accuracy per type with Wilson 95% intervals.

Items with several negatives (an `item` column shared by their rows: ARO's order task, the caption
against four perturbations) are one decision each: correct when the caption scores above every one
of them; on rows with `ties_win` True a tie goes to the caption (ARO's `np.argmax` with the caption
listed first). Each distinct (image, text) is scored once, so a caption repeated over its item's rows
has one score and a perturbation identical to its caption ties exactly. Accuracy counts items.

Scorers:
- any open_clip model by name: cosine of image and text embeddings (`open_clip_scores`);
- this pipeline's trained VLMs: log P(caption | `[head] [image] A picture of`) minus the same without
  the image tokens (`vlm_scores`; taxvlm.evaluation.scoring's continuation scoring, the naming readout's prompt),
  so a caption the LM finds likely on its own gains nothing;
- the contrastive models of `taxvlm.compositional.contrastive` (cosine, `embedding_scores`).
Every text is embedded or scored once per model (texts repeat across images and types).

Items table: `image_id`, `caption`, `negative`, `type` (+ anything else, kept); invalid negatives of
the generator (`valid` False) are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from statsmodels.stats.proportion import proportion_confint

from taxvlm.compositional.benchmarks import CROP_COLUMNS
from taxvlm.data.errors import DataError
from taxvlm.models.lms import caption_prompt
from taxvlm.evaluation.scoring import score_continuations, score_continuations_without_image

ITEM_COLUMNS = ["image_id", "caption", "negative", "type"]
ACCURACY_COLUMNS = ["model", "type", "n", "correct", "accuracy", "ci_low", "ci_high"]
Box = tuple[float, float, float, float]


def _truth(column: pd.Series) -> pd.Series:
    """Booleans from a column read as text (`read_tsv` keeps strings) or already boolean."""
    return column.astype(str).str.lower() == "true"


def valid_items(negatives: pd.DataFrame) -> pd.DataFrame:
    """The generator's valid rows (all rows of a benchmark table, which has no `valid` column)."""
    if "valid" in negatives.columns:
        negatives = negatives[_truth(negatives["valid"])]
    return negatives.reset_index(drop=True)


def score_items(
    items: pd.DataFrame, score: Callable[[Sequence[str], Sequence[str]], np.ndarray], image: str = "image_id"
) -> pd.DataFrame:
    """`items` with `score_caption`, `score_negative`, `correct` (the item's decision; with an `item`
    column also `pair_correct`, the row's own); `score(images, texts)` scores each (image, text) row,
    the image named by column `image` (`view` for a cropped region, `image_views`)."""
    pairs = pd.concat(
        [
            items[[image, "caption"]].set_axis(["image_id", "text"], axis=1),
            items[[image, "negative"]].set_axis(["image_id", "text"], axis=1),
        ]
    )
    unique = pairs.drop_duplicates().reset_index(drop=True)
    scores = np.asarray(score(list(unique["image_id"]), list(unique["text"])), dtype=float)
    lookup = dict(zip(zip(unique["image_id"], unique["text"]), scores))
    scored = items.assign(
        score_caption=[lookup[k] for k in zip(items[image], items["caption"])],
        score_negative=[lookup[k] for k in zip(items[image], items["negative"])],
    )
    ties = _truth(scored["ties_win"]) if "ties_win" in scored.columns else pd.Series(False, index=scored.index)
    wins = (scored["score_caption"] > scored["score_negative"]) | (
        ties & (scored["score_caption"] == scored["score_negative"])
    )
    if "item" not in scored.columns:
        return scored.assign(correct=wins)
    return scored.assign(correct=wins.groupby(scored["item"]).transform("all"), pair_correct=wins)


def image_views(items: pd.DataFrame, image_root: Path) -> tuple[pd.DataFrame, dict[str, str], dict[str, Box]]:
    """`items` with a `view` column (the image id, plus `#x,y,w,h` where the benchmark scores a region:
    ARO's VG sets, `CROP_COLUMNS`), each view's file and each cropped view's box (left, top, right, bottom)."""
    if not set(CROP_COLUMNS) <= set(items.columns):
        views = items.assign(view=items["image_id"])
        return views, {i: str(image_root / i) for i in views["view"]}, {}
    boxes = items[list(CROP_COLUMNS)].astype(float)
    view = [f"{i}#{x:g},{y:g},{w:g},{h:g}" for i, (x, y, w, h) in zip(items["image_id"], boxes.itertuples(index=False))]
    views = items.assign(view=view)
    crops = {v: (x, y, x + w, y + h) for v, (x, y, w, h) in zip(view, boxes.itertuples(index=False))}
    return views, dict(zip(view, (str(image_root / i) for i in items["image_id"]))), crops


def accuracy_by_type(scored: pd.DataFrame, model: str) -> pd.DataFrame:
    """One row per type: n (items), correct, accuracy and its Wilson 95% interval."""
    if "item" in scored.columns:
        scored = scored.drop_duplicates(["type", "item"])
    rows = []
    for kind, group in scored.groupby("type", sort=True):
        n, k = len(group), int(_truth(group["correct"]).sum())
        low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
        rows.append(dict(model=model, type=kind, n=n, correct=k, accuracy=k / n, ci_low=low, ci_high=high))
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS)


def embedding_scores(
    image_embeds: dict[str, torch.Tensor], embed_texts: Callable[[list[str]], torch.Tensor]
) -> Callable[[Sequence[str], Sequence[str]], np.ndarray]:
    """A cosine scorer from image embeddings (by id) and a text embedder; each distinct text is
    embedded once."""

    def score(image_ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        unique = sorted(set(texts))
        text = torch.nn.functional.normalize(embed_texts(unique).float(), dim=-1)
        row = {t: i for i, t in enumerate(unique)}
        image = torch.nn.functional.normalize(torch.stack([image_embeds[i] for i in image_ids]).float(), dim=-1)
        return (image * text[[row[t] for t in texts]]).sum(-1).numpy()

    return score


@torch.inference_mode()
def open_clip_scorer(
    model: Any,
    tokenizer: Any,
    preprocess: Any,
    image_paths: dict[str, str],
    batch_size: int = 32,
    crops: dict[str, Box] | None = None,
) -> Callable[[Sequence[str], Sequence[str]], np.ndarray]:
    """Cosine scorer of an open_clip model; images (cropped to `crops[id]` where given) embedded once each."""

    dev = next(model.parameters()).device
    ids = sorted(image_paths)
    embeds: dict[str, torch.Tensor] = {}
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        pixels = torch.stack([preprocess(open_image(image_paths[i], (crops or {}).get(i))) for i in chunk]).to(dev)
        embeds.update(zip(chunk, model.encode_image(pixels).cpu()))

    @torch.inference_mode()
    def embed_texts(texts: list[str]) -> torch.Tensor:
        parts = [
            model.encode_text(tokenizer(texts[s : s + batch_size]).to(dev)).cpu()
            for s in range(0, len(texts), batch_size)
        ]
        return torch.cat(parts)

    return embedding_scores(embeds, embed_texts)


def open_image(path: str, box: Box | None) -> Any:
    """The image as RGB, cropped to `box` (left, top, right, bottom) when given."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    return image if box is None else image.crop(box)


def vlm_scorer(
    model: torch.nn.Module,
    tokenizer: Any,
    projector: torch.nn.Module,
    features: torch.Tensor,
    index: dict[str, int],
    batch_size: int = 64,
) -> Callable[[Sequence[str], Sequence[str]], np.ndarray]:
    """log P(` caption` | image, `A picture of`) − log P(` caption` | `A picture of`) (module docstring)."""
    head, prompt_ids = caption_prompt(tokenizer)

    def score(image_ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        missing = sorted(set(image_ids) - set(index))
        if missing:
            raise DataError(f"no cached features for image(s) {missing[:3]}")
        ids = {t: tokenizer(" " + t, add_special_tokens=False)["input_ids"] for t in sorted(set(texts))}
        unique = list(ids)
        alone = score_continuations_without_image(model, head, prompt_ids, [ids[t] for t in unique], batch_size)
        noimage = dict(zip(unique, alone.tolist()))
        rows = [index[i] for i in image_ids]
        withimage = score_continuations(
            model, head, prompt_ids, projector, features, rows, [ids[t] for t in texts], batch_size
        )
        return withimage.numpy() - np.array([noimage[t] for t in texts])

    return score
