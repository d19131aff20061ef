"""The probe statement reads each layer against the random-init twin's probe at the same layer."""

from __future__ import annotations

import pandas as pd

from taxvlm.analysis.probe_report import best_layers, statement


def _summary() -> pd.DataFrame:
    rows = []
    for init, accuracies in (("pretrained", [0.6, 0.9, 0.7]), ("random", [0.6, 0.88, 0.6])):
        for layer, accuracy in enumerate(accuracies):
            rows.append({
                "encoder": "e", "lm": "l", "init": init, "condition": "full", "shuffle": "original",
                "objective": "yesno", "task": "entailment", "position": "answer", "layer": layer, "n_layers": 3,
                "depth": layer / 2, "accuracy": accuracy, "accuracy_ci_low": accuracy - 0.05,
                "accuracy_ci_high": accuracy + 0.05, "selectivity": 0.1, "chance": 0.5, "majority": 0.5,
                "n_seeds": 1, "lm_accuracy": float("nan"), "accuracy_lm_wrong": float("nan"),
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_the_best_layer_is_compared_with_the_twin_at_that_layer():
    best = best_layers(_summary()).set_index("init")
    assert best.loc["pretrained", "best_layer"] == 1
    assert best.loc["pretrained", "twin_accuracy"] == 0.88
    assert abs(best.loc["pretrained", "versus_twin"] - 0.02) < 1e-9
    assert pd.isna(best.loc["random", "twin_accuracy"])
    text = statement(best_layers(_summary()))
    assert "twin's probe at the same layer: 0.880 (pretrained − twin +0.020): what both find is the encoder's" in text
