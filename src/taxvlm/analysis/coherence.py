"""Visual coherence of a category (docs/protocol.md §12) and its correlation with held-out F1.

Coherence = mean pairwise cosine similarity (self-pairs excluded) of the encoder embeddings of all
*training* images attached to the category's member leaves. Under a shuffle σ the questions of leaf s
are attached to the images of σ(s), so the category's images are the training images of σ(s) for its
members: `across` should lower coherence, `within` should keep it.

The embedding of an image is the mean of its cached encoder `tokens` ("mean-pooled tokens"),
not the encoder's own `pooled` output, so every encoder is measured the same way whatever its head.

Two centerings are reported side by side (column `centering`):
- `raw`: cosines of the embeddings as they are. Features of a ReLU/SiLU CNN are non-negative and
  share a large common component, so every cosine is high and categories barely differ.
- `centred`: the encoder's mean embedding over *all* training images is subtracted first, so the
  cosine measures how images deviate together from the typical image (the default run's raw and
  centred values: docs/default-results.md). The mean is one vector per encoder, shared by every
  shuffle and category.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from taxvlm.analysis.metrics import RUN_KEYS
from taxvlm.analysis.stats import correlations
from taxvlm.io import load_pt, read_tsv

COHERENCE_COLUMNS: tuple[str, ...] = (
    "encoder",
    "centering",
    "shuffle",
    "category",
    "n_leaves",
    "n_images",
    "coherence",
)
CENTERINGS: tuple[str, ...] = ("raw", "centred")


def mean_embeddings(features_path: str | os.PathLike[str], chunk: int = 512) -> tuple[list[str], np.ndarray]:
    """Image ids and mean-pooled token embeddings (float32) from a feature cache.

    Averaged in chunks so a large fp16 cache is never expanded to float32 all at once.
    """
    cache = load_pt(features_path)
    tokens = cache["tokens"]
    means = torch.cat([tokens[i : i + chunk].float().mean(dim=1) for i in range(0, len(tokens), chunk)])
    return list(cache["image_ids"]), means.numpy()


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero rather than becoming NaN)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def unit_embeddings_by_centering(embeddings: np.ndarray, train_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Unit embeddings per centering: `raw`, and `centred` (the mean over `train_rows` subtracted)."""
    if not len(train_rows):
        raise ValueError("no training image in the feature cache: the centred coherence needs their mean")
    centre = embeddings[train_rows].mean(axis=0, dtype=np.float64).astype(embeddings.dtype)
    return {"raw": unit_rows(embeddings), "centred": unit_rows(embeddings - centre)}


def mean_pairwise_cosine(unit: np.ndarray) -> float:
    """Mean cosine over ordered pairs i ≠ j of unit vectors, via (‖Σv‖² − Σ‖v‖²) / (n(n−1)).

    O(n·d) instead of the O(n²·d) Gram matrix; NaN for fewer than two vectors.
    """
    n = len(unit)
    if n < 2:
        return float("nan")
    total = unit.sum(axis=0, dtype=np.float64)
    return float((total @ total - np.square(unit, dtype=np.float64).sum()) / (n * (n - 1)))


def category_images(pairs: pd.DataFrame, images: pd.DataFrame, shuffle_map: pd.DataFrame) -> pd.DataFrame:
    """(category, leaf, image_id) of the training images each category sees under a shuffle map."""
    members = pairs.rename(columns={"concept": "leaf", "hypernym": "category"})[["category", "leaf"]]
    attached = members.merge(shuffle_map[["leaf", "image_concept"]], on="leaf", how="inner", validate="m:1")
    train = images.loc[images["split"] == "train", ["image_id", "concept"]]
    return attached.merge(train, left_on="image_concept", right_on="concept")[["category", "leaf", "image_id"]]


def coherence_table(
    features_path: str | os.PathLike[str],
    encoder: str,
    images_tsv: str | os.PathLike[str],
    pairs_tsv: str | os.PathLike[str],
    shuffle_maps: Mapping[str, str | os.PathLike[str]],
) -> pd.DataFrame:
    """Coherence of every category under every shuffle (`shuffle_maps`: shuffle name → shuffle_map.tsv),
    raw and centred on the mean of all training images in the cache."""
    image_ids, embeddings = mean_embeddings(features_path)
    row_of = pd.Series(np.arange(len(image_ids)), index=image_ids)
    pairs, images = read_tsv(pairs_tsv), read_tsv(images_tsv)
    train_ids = images.loc[images["split"] == "train", "image_id"]
    units = unit_embeddings_by_centering(embeddings, row_of.loc[train_ids].to_numpy())
    rows = []
    for shuffle, map_path in sorted(shuffle_maps.items()):
        attached = category_images(pairs, images, read_tsv(map_path))
        for category, group in attached.groupby("category", sort=True):
            index = row_of.loc[group["image_id"]].to_numpy()
            rows += [
                {
                    "encoder": encoder,
                    "centering": centering,
                    "shuffle": shuffle,
                    "category": category,
                    "n_leaves": group["leaf"].nunique(),
                    "n_images": len(group),
                    "coherence": mean_pairwise_cosine(units[centering][index]),
                }
                for centering in CENTERINGS
            ]
    return pd.DataFrame(rows, columns=list(COHERENCE_COLUMNS))


def coherence_correlations(
    coherence: pd.DataFrame, metrics: pd.DataFrame, test_sets: Sequence[str] = ("seen", "unseen")
) -> pd.DataFrame:
    """Per run, decision rule, hypernym test set and centering: Pearson/Spearman of category coherence
    with category macro-F1. Each run is matched to the coherence of its own encoder and shuffle.
    """
    joined = metrics[metrics["test_set"].isin(test_sets)].merge(
        coherence[["encoder", "centering", "shuffle", "category", "coherence"]], on=["encoder", "shuffle", "category"]
    )
    return correlations(joined, "coherence", "macro_f1", by=[*RUN_KEYS, "readout", "rule", "test_set", "centering"])


def coherence_tables(
    features: Mapping[str, str | os.PathLike[str]],
    images_tsv: str | os.PathLike[str],
    pairs_tsv: str | os.PathLike[str],
    shuffle_maps: Mapping[str, str | os.PathLike[str]],
) -> pd.DataFrame:
    """`coherence_table` of every encoder (`features`: encoder name → its feature cache), stacked."""
    return pd.concat(
        [coherence_table(path, encoder, images_tsv, pairs_tsv, shuffle_maps) for encoder, path in features.items()],
        ignore_index=True,
    )
