"""Figures and tables render from small synthetic tables, including grids with missing facets."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from taxvlm.analysis.figures import FIGURES, make_figures
from taxvlm.analysis.metrics import READOUT_RULES, condition_axis, headline
from taxvlm.analysis.tables import TABLES, AnalysisTables, headline_markdown, make_tables
from taxvlm.evaluation.decision import RULES

CATEGORIES = ["animal", "bird", "tool", "food", "plant"]


def synthetic_metrics(
    encoders=("e1", "e2"),
    inits=("pretrained", "random"),
    conditions=("none", "random50", "systematic2", "full"),
    shuffles=("original", "across", "within"),
    seeds=(7, 42),
    readouts=("yesno", "naming"),
) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for encoder, init, condition, shuffle, seed in itertools.product(encoders, inits, conditions, shuffles, seeds):
        family, pct = condition_axis(condition, n_categories=len(CATEGORIES))
        test_sets = ["leaf"] + ["seen"] * (condition != "full") + ["unseen"] * (condition != "none")
        rules = [(readout, rule) for readout in readouts for rule in READOUT_RULES[readout]]
        for (readout, rule), test_set, category in itertools.product(rules, test_sets, CATEGORIES):
            f1 = float(np.clip(0.9 - pct / 300 - 0.3 * (init == "random") + rng.normal(0, 0.05), 0, 1))
            rows.append(
                {
                    "objective": "yesno",
                    "readout": readout,
                    "rule": rule,
                    "n_pairs": 5,
                    "n_unpaired": 0,
                    "pair_accuracy": f1,
                    "encoder": encoder,
                    "lm": "l",
                    "init": init,
                    "condition": condition,
                    "shuffle": shuffle,
                    "seed": seed,
                    "condition_family": family,
                    "pct_deprived": pct,
                    "test_set": test_set,
                    "kind": "leaf" if test_set == "leaf" else "hypernym",
                    "category": category,
                    "n": 10,
                    "n_yes": 5,
                    "n_no": 5,
                    "macro_f1": f1,
                    "accuracy": f1,
                    "majority_label": "No",
                    "majority_macro_f1": 1 / 3,
                    "majority_accuracy": 0.5,
                }
            )
    return pd.DataFrame(rows)


def synthetic_tables(metrics: pd.DataFrame, optional: bool = True) -> AnalysisTables:
    coherence = pd.DataFrame(
        [
            {
                "encoder": e,
                "centering": centering,
                "shuffle": s,
                "category": c,
                "n_leaves": 3,
                "n_images": 9,
                "coherence": (0.3 - 0.15 * (s == "across") + 0.02 * i) * (1 if centering == "centred" else 2),
            }
            for e in metrics["encoder"].unique()
            for centering in ("raw", "centred")
            for s in ("original", "across", "within")
            for i, c in enumerate(CATEGORIES)
        ]
    )
    textprobe = pd.DataFrame(
        [
            {
                "lm": "l",
                "init": init,
                "probe": probe,
                "phrasing": phrasing,
                "rule": rule,
                "scope": scope,
                "hypernym": h,
                "n": 20,
                "n_correct": 12,
                "accuracy": 0.6,
                "ci_low": 0.39,
                "ci_high": 0.78,
                "macro_f1": 0.55 + 0.05 * k,
            }
            for init in ("pretrained", "random")
            for probe, rule in (("yesno", "absolute"), ("yesno", "paired"), ("minimal_pair", "likelihood"))
            for phrasing in ("plural", "type_of", "all")
            for k, (scope, h) in enumerate([("all", ""), *[("hypernym", c) for c in CATEGORIES]])
        ]
    )
    pairs = pd.DataFrame(
        {"concept": [f"leaf{i}" for i in range(15)], "hypernym": np.repeat(CATEGORIES, [1, 2, 3, 4, 5])}
    )
    return AnalysisTables(
        metrics,
        headline(metrics),
        coherence if optional else None,
        textprobe if optional else None,
        pairs if optional else None,
    )


def _render_all(tables: AnalysisTables, out_dir, names=tuple(FIGURES)) -> dict[str, object]:
    outputs = {name: out_dir / f"{name}.png" for name in names}
    make_figures(tables, outputs)
    for path in outputs.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return outputs


def test_all_figures_render_on_a_full_grid(tmp_path):
    _render_all(synthetic_tables(synthetic_metrics()), tmp_path)


@pytest.mark.parametrize(
    "grid",
    [
        {
            "encoders": ("e1",),
            "inits": ("pretrained",),
            "conditions": ("none", "full"),
            "shuffles": ("original",),
            "seeds": (7,),
        },
        {
            "encoders": ("e1",),
            "inits": ("random",),
            "conditions": ("random50",),
            "shuffles": ("across",),
            "seeds": (7,),
        },
        {"conditions": ("none",), "shuffles": ("original",)},
        {"conditions": ("full",), "shuffles": ("original",), "readouts": ("yesno",)},
        {"conditions": ("full",), "shuffles": ("original",), "readouts": ("naming",)},
    ],
)
def test_figures_and_tables_survive_missing_facets(tmp_path, grid):
    tables = synthetic_tables(synthetic_metrics(**grid), optional=False)
    _render_all(tables, tmp_path)
    make_tables(tables, {name: (tmp_path / f"{name}.csv", tmp_path / f"{name}.md") for name in TABLES})
    assert (tmp_path / "textprobe.md").read_text() == "_not in this grid_\n"


def test_figures_are_byte_identical_across_runs(tmp_path):
    tables = synthetic_tables(synthetic_metrics(encoders=("e1",), seeds=(7,)))
    names = ("deprivation", "coherence")
    first, second = _render_all(tables, tmp_path / "a", names), _render_all(tables, tmp_path / "b", names)
    assert all(first[name].read_bytes() == second[name].read_bytes() for name in names)


def test_headline_markdown_puts_rules_and_the_twin_side_by_side():
    metrics = synthetic_metrics(
        encoders=("e1",), conditions=("random50", "full"), shuffles=("original", "within"), readouts=("yesno",)
    )
    metrics = metrics[(metrics["init"] == "pretrained") | (metrics["shuffle"] == "original")]  # twin: original only
    table = headline_markdown(headline(metrics))
    keys = ["encoder", "lm", "condition", "shuffle", "objective", "readout", "test_set", "score", "majority"]
    assert list(table.columns[:9]) == keys
    assert list(table.columns[9:]) == [f"{rule}: {init}" for rule in RULES for init in ("pretrained", "random")] + ["n"]
    assert list(table.drop_duplicates(["condition", "shuffle"])[["condition", "shuffle"]].itertuples(index=False)) == [
        ("random50", "original"),
        ("random50", "within"),
        ("full", "original"),
        ("full", "within"),
    ]  # least deprived first, then shuffles in the protocol's order
    held_out = table[(table["condition"] == "full") & (table["test_set"] == "unseen")].set_index(["shuffle", "score"])
    assert list(held_out.loc["original"].index) == ["macro-F1", "accuracy", "pair accuracy"]
    cell = held_out.loc[("original", "macro-F1"), "paired_calibrated: random"]
    row = headline(metrics).set_index(["condition", "shuffle", "test_set", "rule", "init"])
    row = row.loc[("full", "original", "unseen", "paired_calibrated", "random")]
    assert cell == f"{row['macro_f1']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    assert held_out.loc[("within", "macro-F1"), "absolute: random"] == "—"  # no twin for this shuffle
    assert held_out.loc[("original", "pair accuracy"), "majority"] == "—"
    assert held_out.loc[("original", "macro-F1"), "n"] == "2×5 / 2×5"
    assert held_out.loc[("within", "accuracy"), "n"] == "2×5 / —"


def test_tables_written_as_csv_and_markdown(tmp_path):
    tables = synthetic_tables(synthetic_metrics(encoders=("e1",)))
    make_tables(tables, {name: (tmp_path / f"{name}.csv", tmp_path / f"{name}.md") for name in TABLES})
    headline_csv = pd.read_csv(tmp_path / "headline.csv")
    assert len(headline_csv) == len(tables.headline) and set(headline_csv["rule"]) == set(RULES)
    assert (tmp_path / "headline.md").read_text().startswith("| encoder")
    header = [cell.strip() for cell in (tmp_path / "headline.md").read_text().splitlines()[0].split("|")]
    assert "paired_calibrated: random" in header
    coherence = pd.read_csv(tmp_path / "coherence.csv").set_index(["centering", "shuffle"])
    for centering in ("raw", "centred"):
        assert coherence.loc[(centering, "across"), "coherence"] < coherence.loc[(centering, "original"), "coherence"]
    correlations = pd.read_csv(tmp_path / "textprobe_correlations.csv")
    assert set(correlations["init"]) == {"pretrained", "random"} and (correlations["n"] == len(CATEGORIES)).all()
    assert set(correlations["readout"]) == {"yesno"}  # correlations read the absolute rule: yes/no only
    naming = pd.read_csv(tmp_path / "naming.csv")
    assert set(naming["rule"]) == {"paired", "paired_calibrated"}
    assert set(naming["test_set"]) == {"leaf", "seen", "unseen"}
    header = [cell.strip() for cell in (tmp_path / "naming.md").read_text().splitlines()[0].split("|")]
    assert header[1:-1] == [
        "encoder", "lm", "objective", "condition", "shuffle", "rule",
        *(f"{t}: {i}" for t in ("leaf", "seen", "unseen") for i in ("pretrained", "random")),
    ]


def test_the_registries_are_keyed_by_the_names_the_rules_build() -> None:
    from taxvlm.analysis.names import FIGURE_NAMES, TABLE_NAMES
    from taxvlm.analysis.tables import TABLES

    assert tuple(FIGURES) == FIGURE_NAMES
    assert tuple(TABLES) == TABLE_NAMES
