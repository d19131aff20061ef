"""The tuning choice: best validation accuracy wins, then the shortest training within tolerance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from taxvlm.io import read_tsv, write_tsv
from taxvlm.tune import candidate_name, choose, write_tuning

CANDIDATES = [{"lr": 0.003, "feature_norm": "standardize"}, {"lr": 0.01, "feature_norm": "standardize"}]


def _curve(accuracies: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": [10 * e for e in range(len(accuracies))],
            "epoch": [float(e) for e in range(len(accuracies))],
            "n": 120,
            "accuracy": accuracies,
            "pair_accuracy": accuracies,
            "yes_rate": 0.5,
        }
    )


def test_best_candidate_and_shortest_length_within_tolerance(tmp_path: Path) -> None:
    curves = []
    for candidate, accuracies in zip(CANDIDATES, [[0.5, 0.7, 0.9, 0.91], [0.5, 0.8, 0.95, 0.96]]):
        path = tmp_path / f"{candidate_name(candidate)}.tsv"
        write_tsv(_curve(accuracies), path)
        curves.append(path)
    setup = {"encoder": "e", "lm": "l", "condition": "full", "seed": 7, "epochs": 3, "tolerance": 0.02}
    chosen = write_tuning(CANDIDATES, curves, setup, tmp_path / "t.tsv", tmp_path / "t.md")
    assert chosen == {
        "lr": 0.01,
        "feature_norm": "standardize",
        "epochs": 2,  # 0.95 at epoch 2 is within 0.02 of the best 0.96
        "best_val_accuracy": 0.96,
        "chosen_val_accuracy": 0.95,
    }
    assert len(read_tsv(tmp_path / "t.tsv")) == 8
    report = (tmp_path / "t.md").read_text()
    assert "lr0.01_standardize" in report and "Chosen: lr 0.01, feature_norm `standardize`, 2 epochs" in report


def test_ties_go_to_the_smaller_learning_rate() -> None:
    table = pd.concat(
        [_curve([0.5, 0.9]).assign(lr=lr, feature_norm="none") for lr in (0.01, 0.001)], ignore_index=True
    )
    chosen = choose(table, tolerance=0.0)
    assert chosen["lr"] == 0.001 and chosen["epochs"] == 1
