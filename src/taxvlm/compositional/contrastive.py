"""The contrastive stage: a dual encoder trained with CE-CLIP's losses (`taxvlm.compositional.losses`).

Two dual encoders share one training loop (`train_dual_encoder`):
- faithful (`OpenClipDualEncoder`): an open_clip model fine-tuned whole, CE-CLIP's recipe (AdamW
  with its betas/eps/weight decay, linear warm-up then cosine decay, the learnable logit scale);
- pipeline (`PipelineDualEncoder`): this project's frozen parts. Image side: the cached encoder
  features → the projector of a trained run (fine-tuned here), its prefix tokens mean-pooled. Text
  side: the frozen LM's final hidden states of the caption (no image, no prompt), mean-pooled over
  its tokens, cached once per (LM, text) (`lm_text_features`), + a trained linear head. A step then
  touches no LM at all, so a hard negative costs one more row of a `[B, d]` matmul.

Data (`PairData`): one row per (image, caption) of the hard-negative table; each row's K negatives
(one per type, in `types` order; invalid ones are masked out of every term). Texts are deduplicated
so each is embedded once per step.

A batch repeats no image only by chance: the stamps have several images per caption, so an in-batch
duplicate caption counts as a negative, as in CLIP training on such data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from taxvlm.compositional.losses import ABLATIONS, Terms, ce_clip_loss, itc_loss
from taxvlm.models.lms import decoder_forward, pad_right
from taxvlm.training.schedule import warmup_cosine
from taxvlm.seeding import derive_seed
from taxvlm.settings.compositional import Contrastive

INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature
MAX_LOGIT_SCALE = 100.0


@dataclass
class PairData:
    image: torch.Tensor  # [N] row → image (the model's image index)
    caption: torch.Tensor  # [N] row → text (the model's text index)
    negatives: torch.Tensor  # [N, K] row, type → text (the caption itself where invalid)
    valid: torch.Tensor  # [N, K] bool
    types: list[str]


def _is_valid(column: pd.Series) -> pd.Series:
    return column.astype(str).str.lower() == "true"


def all_texts(negatives: pd.DataFrame, types: Sequence[str]) -> list[str]:
    """Every caption and valid negative of the table (the text side's index), sorted."""
    table = negatives[negatives["type"].isin(types) & _is_valid(negatives["valid"])]
    return sorted(set(negatives["caption"]) | set(table["negative"]))


def pair_data(
    negatives: pd.DataFrame,
    types: Sequence[str],
    image_index: Mapping[str, int],
    text_index: Mapping[str, int],
    image_ids: set[str] | None = None,
) -> PairData:
    """Rows of the hard-negative table (one per image, caption, type) → `PairData` (module docstring),
    restricted to `image_ids` when given."""
    table = negatives if image_ids is None else negatives[negatives["image_id"].isin(image_ids)]
    by_row: dict[tuple[str, str], dict[str, str]] = {}
    for r in table[table["type"].isin(types) & _is_valid(table["valid"])].itertuples(index=False):
        by_row.setdefault((r.image_id, r.caption), {})[r.type] = r.negative
    keys = sorted(set(zip(table["image_id"], table["caption"])))
    negs = [[by_row.get(key, {}).get(t, key[1]) for t in types] for key in keys]
    valid = [[t in by_row.get(key, {}) for t in types] for key in keys]
    return PairData(
        image=torch.tensor([image_index[i] for i, _ in keys], dtype=torch.long),
        caption=torch.tensor([text_index[c] for _, c in keys], dtype=torch.long),
        negatives=torch.tensor([[text_index[t] for t in row] for row in negs], dtype=torch.long).view(
            len(keys), len(types)
        ),
        valid=torch.tensor(valid, dtype=torch.bool).view(len(keys), len(types)),
        types=list(types),
    )


@dataclass(frozen=True)
class Recipe:
    lr: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    warmup_steps: int
    batch_size: int
    epochs: int
    lambda_imc: float
    lambda_cmr: float

    @classmethod
    def from_config(cls, section: Contrastive, **overrides: Any) -> Recipe:
        """CE-CLIP's recipe as `section` gives it, with `overrides` (the pipeline mode's own)."""
        values = {key: getattr(section, key) for key in cls.__dataclass_fields__} | overrides
        return cls(**{**values, "betas": tuple(values["betas"])})


class DualEncoder(nn.Module):
    """What the loop needs: image and text embeddings by index, and the logit scale."""

    def embed_images(self, index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed_texts(self, index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scale(self) -> torch.Tensor:
        raise NotImplementedError


def _batch_embeddings(
    model: DualEncoder, data: PairData, rows: torch.Tensor, with_negatives: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Normalised image `[B, D]`, caption `[B, D]` and negative `[B, K, D]` embeddings; each distinct
    text of the batch embedded once."""
    image = F.normalize(model.embed_images(data.image[rows]), dim=-1)
    wanted = torch.cat([data.caption[rows], data.negatives[rows].flatten()]) if with_negatives else data.caption[rows]
    unique, inverse = torch.unique(wanted, return_inverse=True)
    text = F.normalize(model.embed_texts(unique), dim=-1)[inverse]
    if not with_negatives:
        return image, text, None
    n = len(rows)
    return image, text[:n], text[n:].view(n, data.negatives.shape[1], -1)


def train_dual_encoder(model: DualEncoder, data: PairData, recipe: Recipe, terms: Terms, seed: int) -> pd.DataFrame:
    """Train in place; the curve (`step`, `epoch`, `loss`, each term, `theta_{type}` used at that step)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, weight_decay=recipe.weight_decay)
    n_rows = len(data.caption)
    if n_rows < 2:
        raise ValueError(f"contrastive training needs at least 2 (image, caption) rows; got {n_rows}")
    batch = min(recipe.batch_size, n_rows)  # a small dataset trains full-batch
    per_epoch = n_rows // batch
    sched = warmup_cosine(opt, recipe.warmup_steps, per_epoch * recipe.epochs)
    gen = torch.Generator().manual_seed(derive_seed(seed, "contrastive-order") % 2**63)
    theta = torch.zeros(len(data.types))
    records = []
    model.train()
    for epoch in range(recipe.epochs):
        order = torch.randperm(n_rows, generator=gen)
        for rows in order[: per_epoch * batch].view(per_epoch, -1):
            image, text, negatives = _batch_embeddings(model, data, rows, terms.hard_negatives)
            used = theta
            loss, parts, theta = _step_loss(model, data, rows, image, text, negatives, theta, recipe, terms)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            thetas = {f"theta_{k}": float(v) for k, v in zip(data.types, used)}
            records.append(dict(step=len(records) + 1, epoch=epoch + 1, loss=float(loss.detach()), **parts, **thetas))
    model.eval()
    return pd.DataFrame(records)


def _step_loss(
    model: DualEncoder,
    data: PairData,
    rows: torch.Tensor,
    image: torch.Tensor,
    text: torch.Tensor,
    negatives: torch.Tensor | None,
    theta: torch.Tensor,
    recipe: Recipe,
    terms: Terms,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """The batch loss; plain CLIP (`itc`) embeds no negative and leaves θ at its value."""
    scale = model.scale()
    if negatives is None:
        loss = itc_loss(image, text, scale)
        return loss, {"itc": float(loss.detach())}, theta
    valid = data.valid[rows]
    return ce_clip_loss(image, text, negatives, valid, theta, scale, terms, recipe.lambda_imc, recipe.lambda_cmr)


def ablation_terms(name: str) -> Terms:
    if name not in ABLATIONS:
        raise ValueError(f"compositional.contrastive.ablations: {name!r} is not one of {sorted(ABLATIONS)}")
    return ABLATIONS[name]


class PipelineDualEncoder(DualEncoder):
    """Pipeline mode (module docstring): trained projector + linear text head on frozen, cached parts."""

    def __init__(self, projector: nn.Module, image_features: torch.Tensor, text_features: torch.Tensor):
        super().__init__()
        self.projector = projector
        d = text_features.shape[1]
        self.head = nn.Linear(d, d)
        self.logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))
        self.register_buffer("image_features", image_features.float(), persistent=False)
        self.register_buffer("text_features", text_features.float(), persistent=False)

    def embed_images(self, index: torch.Tensor) -> torch.Tensor:
        return self.projector(self.image_features[index]).mean(dim=1)

    def embed_texts(self, index: torch.Tensor) -> torch.Tensor:
        return self.head(self.text_features[index])

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)


class OpenClipDualEncoder(DualEncoder):
    """Faithful mode: an open_clip model; images are preprocessed from their files per batch."""

    def __init__(self, model: nn.Module, tokenizer: Any, preprocess: Any, image_paths: list[str], texts: list[str]):
        super().__init__()
        self.model, self.tokenizer, self.preprocess = model, tokenizer, preprocess
        self.image_paths, self.texts = image_paths, texts

    def embed_images(self, index: torch.Tensor) -> torch.Tensor:
        from PIL import Image

        dev = self.model.logit_scale.device
        pixels = [self.preprocess(Image.open(self.image_paths[i]).convert("RGB")) for i in index.tolist()]
        return self.model.encode_image(torch.stack(pixels).to(dev))

    def embed_texts(self, index: torch.Tensor) -> torch.Tensor:
        dev = self.model.logit_scale.device
        return self.model.encode_text(self.tokenizer([self.texts[i] for i in index.tolist()]).to(dev))

    def scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)


@torch.inference_mode()
def lm_text_features(model: nn.Module, tokenizer: Any, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """`[N, d]`: the frozen LM's final hidden states of each text (as the tokenizer encodes it alone,
    with BOS when it adds one), mean-pooled over the text's tokens; right padding keeps them exact."""
    dev = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        ids, lengths = pad_right([tokenizer(t)["input_ids"] for t in texts[start : start + batch_size]])
        hidden, _ = decoder_forward(model, model.get_input_embeddings()(ids.to(dev)))
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).to(dev, hidden.dtype)
        out.append(((hidden * mask[..., None]).sum(1) / lengths[:, None].to(dev)).float().cpu())
    return torch.cat(out) if out else torch.empty(0, 0)


def text_embedder(model: DualEncoder, texts: list[str]):
    """A text → embedding function over `model.embed_texts` for `evaluation.embedding_scores`."""
    index = {t: i for i, t in enumerate(texts)}

    @torch.inference_mode()
    def embed(batch: list[str]) -> torch.Tensor:
        return model.embed_texts(torch.tensor([index[t] for t in batch])).cpu()

    return embed


@torch.inference_mode()
def image_embeddings(
    model: DualEncoder, image_index: Mapping[str, int], image_ids: Sequence[str], batch_size: int = 64
) -> dict[str, torch.Tensor]:
    """Image id → embedding for `image_ids` (the model's image index maps them)."""
    ids = sorted(set(image_ids))
    out: dict[str, torch.Tensor] = {}
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        out.update(zip(chunk, model.embed_images(torch.tensor([image_index[i] for i in chunk])).cpu()))
    return out


def curve_summary(curve: pd.DataFrame) -> dict[str, float]:
    """Last-epoch means of the curve's numeric columns (for logs and the report)."""
    last = curve[curve["epoch"] == curve["epoch"].max()]
    return {k: float(np.mean(last[k])) for k in last.columns if k not in ("step", "epoch")}
