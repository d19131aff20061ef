"""Visual coherence against a direct O(n²) computation, and the shuffles' expected effect on it."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from taxvlm.analysis.coherence import coherence_correlations, coherence_table, mean_pairwise_cosine
from taxvlm.io import write_tsv

CATEGORIES = {"animal": ["a1", "a2", "a3"], "tool": ["t1", "t2", "t3"], "food": ["f1", "f2", "f3"]}
LEAVES = [leaf for members in CATEGORIES.values() for leaf in members]


def _direct_coherence(vectors: np.ndarray) -> float:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    pairs = [float(unit[i] @ unit[j]) for i, j in itertools.permutations(range(len(unit)), 2)]
    return float(np.mean(pairs))


def test_mean_pairwise_cosine_matches_loop():
    vectors = np.random.default_rng(1).normal(size=(7, 5))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert mean_pairwise_cosine(unit) == pytest.approx(_direct_coherence(vectors))
    assert np.isnan(mean_pairwise_cosine(unit[:1]))


@pytest.fixture
def world(tmp_path):
    """Three visually separated categories: each image = its category's direction + noise."""
    rng = np.random.default_rng(0)
    directions = {category: rng.normal(size=16) * 3 for category in CATEGORIES}
    image_rows, tokens = [], []
    for category, members in CATEGORIES.items():
        for leaf in members:
            for k in range(5):
                image_rows.append(
                    {
                        "image_id": f"{leaf}/{k}",
                        "concept": leaf,
                        "path": f"{leaf}/{k}.png",
                        "split": "test" if k == 4 else "train",
                    }
                )
                tokens.append(directions[category] + rng.normal(size=(3, 16)))
    features = tmp_path / "enc.pt"
    torch.save(
        {
            "image_ids": [r["image_id"] for r in image_rows],
            "tokens": torch.tensor(np.stack(tokens), dtype=torch.float16),
            "pooled": torch.zeros(len(tokens), 16, dtype=torch.float16),
            "meta": {},
        },
        features,
    )
    write_tsv(pd.DataFrame(image_rows), tmp_path / "images.tsv")
    write_tsv(
        pd.DataFrame([{"concept": leaf, "hypernym": c} for c, members in CATEGORIES.items() for leaf in members]),
        tmp_path / "pairs.tsv",
    )
    maps = {
        "original": LEAVES,
        "within": [members[(i + 1) % 3] for members in CATEGORIES.values() for i in range(3)],
        "across": [LEAVES[(i + 4) % len(LEAVES)] for i in range(len(LEAVES))],  # every category gets 3 others
    }
    for name, targets in maps.items():
        write_tsv(pd.DataFrame({"leaf": LEAVES, "image_concept": targets}), tmp_path / f"{name}.tsv")
    return tmp_path, features, np.stack(tokens), pd.DataFrame(image_rows)


def _table(world) -> pd.DataFrame:
    tmp_path, features, _, _ = world
    maps = {name: tmp_path / f"{name}.tsv" for name in ("original", "within", "across")}
    return coherence_table(features, "enc", tmp_path / "images.tsv", tmp_path / "pairs.tsv", maps)


def test_coherence_matches_direct_computation_on_training_images(world):
    _, _, tokens, images = world
    table = _table(world).set_index(["shuffle", "category"])
    pooled = torch.tensor(tokens, dtype=torch.float16).float().mean(dim=1).numpy()
    for category, members in CATEGORIES.items():
        rows = images.index[images["concept"].isin(members) & (images["split"] == "train")]
        row = table.loc[("original", category)]
        assert row["coherence"] == pytest.approx(_direct_coherence(pooled[rows]), abs=1e-5)
        assert (row["n_leaves"], row["n_images"]) == (3, 12)


def test_across_lowers_coherence_and_within_keeps_it(world):
    table = _table(world).pivot(index="category", columns="shuffle", values="coherence")
    assert (table["across"] < table["original"] - 0.2).all()
    assert np.allclose(table["within"], table["original"])  # same image set, permuted among members


def test_coherence_correlations_per_run(world):
    coherence = _table(world)
    metrics = pd.DataFrame(
        {
            "encoder": "enc",
            "lm": "l",
            "init": "pretrained",
            "condition": "full",
            "shuffle": "original",
            "seed": 7,
            "test_set": "unseen",
            "category": list(CATEGORIES),
            "macro_f1": [0.9, 0.5, 0.7],
        }
    )
    result = coherence_correlations(coherence, metrics)
    assert len(result) == 1 and result["n"].iloc[0] == 3
    expected = coherence[coherence["shuffle"] == "original"].set_index("category").loc[list(CATEGORIES), "coherence"]
    assert result["pearson_r"].iloc[0] == pytest.approx(np.corrcoef(expected, [0.9, 0.5, 0.7])[0, 1])
