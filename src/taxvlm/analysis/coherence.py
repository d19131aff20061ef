"""Visual coherence of a category (protocol §7) and its correlation with held-out F1.

Coherence = mean pairwise cosine similarity (self-pairs excluded) of the encoder embeddings of all
*training* images attached to the category's member leaves. Under a shuffle σ the questions of leaf s
are attached to the images of σ(s), so the category's images are the training images of σ(s) for its
members: `across` should lower coherence, `within` should keep it.

The embedding of an image is the mean of its cached encoder `tokens` (protocol: "mean-pooled tokens"),
not the encoder's own `pooled` output, so every encoder is measured the same way whatever its head.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from taxvlm.analysis.metrics import RUN_KEYS
from taxvlm.analysis.stats import correlations
from taxvlm.io import read_tsv

COHERENCE_COLUMNS: tuple[str, ...] = ("encoder", "shuffle", "category", "n_leaves", "n_images", "coherence")


def unit_embeddings(features_path: str | os.PathLike[str], chunk: int = 512) -> tuple[list[str], np.ndarray]:
    """Image ids and L2-normalised mean-pooled token embeddings (float32) from a feature cache.

    Averaged in chunks so a large fp16 cache is never expanded to float32 all at once.
    """
    cache = torch.load(features_path, map_location="cpu", weights_only=True)
    tokens = cache["tokens"]
    means = torch.cat([tokens[i : i + chunk].float().mean(dim=1) for i in range(0, len(tokens), chunk)])
    unit = torch.nn.functional.normalize(means, dim=1)
    return list(cache["image_ids"]), unit.numpy()


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
    """Coherence of every category under every shuffle (`shuffle_maps`: shuffle name → shuffle_map.tsv)."""
    image_ids, unit = unit_embeddings(features_path)
    row_of = pd.Series(np.arange(len(image_ids)), index=image_ids)
    pairs, images = read_tsv(pairs_tsv), read_tsv(images_tsv)
    rows = []
    for shuffle, map_path in sorted(shuffle_maps.items()):
        attached = category_images(pairs, images, read_tsv(map_path))
        for category, group in attached.groupby("category", sort=True):
            vectors = unit[row_of.loc[group["image_id"]].to_numpy()]
            rows.append(
                {
                    "encoder": encoder,
                    "shuffle": shuffle,
                    "category": category,
                    "n_leaves": group["leaf"].nunique(),
                    "n_images": len(group),
                    "coherence": mean_pairwise_cosine(vectors),
                }
            )
    return pd.DataFrame(rows, columns=list(COHERENCE_COLUMNS))


def coherence_correlations(
    coherence: pd.DataFrame, metrics: pd.DataFrame, test_sets: Sequence[str] = ("seen", "unseen")
) -> pd.DataFrame:
    """Per run and hypernym test set: Pearson/Spearman of category coherence with category macro-F1.

    Each run is matched to the coherence of its own encoder and shuffle.
    """
    joined = metrics[metrics["test_set"].isin(test_sets)].merge(
        coherence[["encoder", "shuffle", "category", "coherence"]], on=["encoder", "shuffle", "category"]
    )
    return correlations(joined, "coherence", "macro_f1", by=[*RUN_KEYS, "test_set"])
