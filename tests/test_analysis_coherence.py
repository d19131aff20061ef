"""Visual coherence (raw and mean-centred) against a direct O(n²) computation, and the shuffles'
expected effect on it."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from taxvlm.analysis.coherence import CENTERINGS, coherence_correlations, coherence_table, mean_pairwise_cosine
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


def _make_world(tmp_path, offset: float = 0.0):
    """Three visually separated categories: each image = `offset` (a shared positive component, as in
    non-negative CNN features) + its category's direction + noise."""
    rng = np.random.default_rng(0)
    directions = {category: rng.normal(size=16) * 3 for category in CATEGORIES}
    common = offset * np.abs(rng.normal(size=16))
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
                tokens.append(common + directions[category] + rng.normal(size=(3, 16)))
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


@pytest.fixture
def world(tmp_path):
    return _make_world(tmp_path)


def _table(world) -> pd.DataFrame:
    tmp_path, features, _, _ = world
    maps = {name: tmp_path / f"{name}.tsv" for name in ("original", "within", "across")}
    return coherence_table(features, "enc", tmp_path / "images.tsv", tmp_path / "pairs.tsv", maps)


def test_coherence_matches_direct_computation_on_training_images(world):
    _, _, tokens, images = world
    table = _table(world).set_index(["centering", "shuffle", "category"])
    pooled = torch.tensor(tokens, dtype=torch.float16).float().mean(dim=1).numpy()
    train = images.index[images["split"] == "train"]
    centred = pooled - pooled[train].mean(axis=0)  # the mean of every training image, all categories
    for category, members in CATEGORIES.items():
        rows = images.index[images["concept"].isin(members) & (images["split"] == "train")]
        raw_row, centred_row = table.loc[("raw", "original", category)], table.loc[("centred", "original", category)]
        assert raw_row["coherence"] == pytest.approx(_direct_coherence(pooled[rows]), abs=1e-5)
        assert centred_row["coherence"] == pytest.approx(_direct_coherence(centred[rows]), abs=1e-5)
        assert (raw_row["n_leaves"], raw_row["n_images"]) == (3, 12)


@pytest.mark.parametrize("centering", CENTERINGS)
def test_across_lowers_coherence_and_within_keeps_it(world, centering):
    table = _table(world)
    table = table[table["centering"] == centering].pivot(index="category", columns="shuffle", values="coherence")
    assert (table["across"] < table["original"] - 0.2).all()
    assert np.allclose(table["within"], table["original"])  # same image set, permuted among members


def test_centring_separates_categories_that_raw_cosines_hide(tmp_path):
    """A large shared component makes every raw cosine near 1 whatever the shuffle; subtracting the
    mean training feature recovers the categories (docs/protocol.md §12)."""
    table = _table(_make_world(tmp_path, offset=40.0))
    mean = table.groupby(["centering", "shuffle"])["coherence"].mean()
    assert mean[("raw", "original")] > 0.95 and mean[("raw", "across")] > 0.95
    assert mean[("raw", "original")] - mean[("raw", "across")] < 0.05
    assert mean[("centred", "original")] > 0.5
    assert mean[("centred", "original")] - mean[("centred", "across")] > 0.4


def test_coherence_correlations_per_run(world):
    coherence = _table(world)
    metrics = pd.DataFrame(
        {
            "encoder": "enc",
            "lm": "l",
            "init": "pretrained",
            "condition": "full",
            "shuffle": "original",
            "objective": "yesno",
            "seed": 7,
            "readout": "yesno",
            "rule": "absolute",
            "test_set": "unseen",
            "category": list(CATEGORIES),
            "macro_f1": [0.9, 0.5, 0.7],
        }
    )
    result = coherence_correlations(coherence, metrics).set_index("centering")
    assert sorted(result.index) == sorted(CENTERINGS) and (result["n"] == 3).all()
    for centering in CENTERINGS:
        own = coherence[(coherence["shuffle"] == "original") & (coherence["centering"] == centering)]
        expected = own.set_index("category").loc[list(CATEGORIES), "coherence"]
        assert result.loc[centering, "pearson_r"] == pytest.approx(np.corrcoef(expected, [0.9, 0.5, 0.7])[0, 1])
