"""Each figure plots its table: the drawn series (lines, bars, points) equal the rows they come from.

`figures._save` is replaced by a recorder, so the tests read the matplotlib Axes before they are
closed; tiny synthetic grids keep every test to a few panels.
"""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from test_analysis_figures import CATEGORIES, synthetic_metrics, synthetic_tables

from taxvlm.analysis import figures
from taxvlm.analysis.metrics import headline, t_interval

GRID = {"encoders": ("e1",), "conditions": ("random50", "full"), "seeds": (7, 42), "readouts": ("yesno",)}


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, plt.Figure]]:
    """path → the figure a drawing function saved there (kept open until the test ends)."""
    saved: dict[str, plt.Figure] = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.__setitem__(str(path), fig))
    yield saved
    plt.close("all")


def _axes(fig: plt.Figure) -> dict[str, plt.Axes]:
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def _bars(ax: plt.Axes, horizontal: bool = False) -> dict[str, list[float]]:
    """Tick label → the bar lengths at that tick, in dodge order (seaborn dodges hue levels in order)."""
    labels = [t.get_text() for t in (ax.get_yticklabels() if horizontal else ax.get_xticklabels())]
    at: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    for bar in ax.patches:
        centre = bar.get_y() + bar.get_height() / 2 if horizontal else bar.get_x() + bar.get_width() / 2
        length, thickness = (bar.get_width(), bar.get_height()) if horizontal else (bar.get_height(), bar.get_width())
        if thickness > 0 and not np.isnan(length):  # legend handles have no extent
            at[labels[int(round(centre))]].append((centre, length))
    return {label: [length for _, length in sorted(bars)] for label, bars in at.items()}


def _expected_bars(panel: pd.DataFrame, x: str, hue: str, hue_order: list[str], y: str = "macro_f1") -> dict:
    means = panel.groupby([x, hue])[y].mean()
    return {
        level: [means[(level, h)] for h in hue_order if (level, h) in means.index]
        for level in panel[x].unique()
    }


def _rows(metrics: pd.DataFrame, test_set: str, rule: str, init: str = "pretrained") -> pd.DataFrame:
    return metrics[(metrics["init"] == init) & (metrics["test_set"] == test_set) & (metrics["rule"] == rule)]


def _lines(ax: plt.Axes) -> set[tuple[tuple[float, ...], tuple[float, ...]]]:
    """The (x, y) data of every drawn line with points (legend stubs have none), rounded."""
    return {
        (tuple(np.round(line.get_xdata(), 9)), tuple(np.round(line.get_ydata(), 9)))
        for line in ax.lines
        if len(line.get_xdata())
    }


def _assert_bars_match(ax: plt.Axes, expected: dict[str, list[float]]) -> None:
    got = _bars(ax)
    assert set(got) == set(expected)
    for level, values in expected.items():
        assert got[level] == pytest.approx(values), level


def test_deprivation_lines_are_the_headline_rows(drawn):
    table = headline(synthetic_metrics(**GRID | {"conditions": ("none", "random50", "full")}))
    figures.deprivation_figure(table, "deprivation.png")
    ax = _axes(drawn["deprivation.png"])["random · absolute · held-out hypernyms"]
    panel = table[(table["rule"] == "absolute") & (table["test_set"] == "unseen") & (table["shuffle"] == "original")]
    panel = panel.sort_values("pct_deprived")
    expected = {
        (tuple(rows["pct_deprived"].astype(float)), tuple(np.round(rows["macro_f1"], 9)))
        for _, rows in panel.groupby("init")
    }
    majority = panel.groupby("pct_deprived")["majority_macro_f1"].mean()
    expected.add((tuple(majority.index.astype(float)), tuple(np.round(majority.to_numpy(), 9))))
    assert _lines(ax) == expected


def test_shuffle_bars_are_mean_f1_per_condition_and_shuffle_with_t_intervals(drawn):
    metrics = synthetic_metrics(**GRID | {"shuffles": ("original", "within", "across")})
    figures.shuffles_figure(metrics, "shuffles.png")
    ax = _axes(drawn["shuffles.png"])["e1 + l · absolute · held-out hypernyms"]
    panel = _rows(metrics, "unseen", "absolute")
    _assert_bars_match(ax, _expected_bars(panel, "condition", "shuffle", ["original", "within", "across"]))
    values = panel[(panel["condition"] == "full") & (panel["shuffle"] == "across")]["macro_f1"]
    low, high = t_interval(values)
    assert (round(low, 9), round(high, 9)) in {tuple(np.round(y, 9)) for _, y in _lines(ax)}


def test_encoder_bars_are_mean_f1_per_condition_and_encoder(drawn):
    metrics = synthetic_metrics(**GRID | {"encoders": ("e1", "e2"), "shuffles": ("original",)})
    figures.encoder_figure(metrics, "encoders.png")
    ax = _axes(drawn["encoders.png"])["l · paired · leaves"]
    panel = _rows(metrics, "leaf", "paired")
    _assert_bars_match(ax, _expected_bars(panel, "condition", "encoder", ["e1", "e2"]))


def test_lm_bars_are_mean_f1_per_condition_lm_and_init(drawn):
    metrics = synthetic_metrics(**GRID | {"shuffles": ("original",)})
    figures.lm_figure(metrics, "lms.png")
    ax = _axes(drawn["lms.png"])["e1 · absolute · held-out hypernyms"]
    panel = metrics[(metrics["test_set"] == "unseen") & (metrics["rule"] == "absolute")]
    panel = panel.assign(lm_init=panel["lm"] + " (" + panel["init"] + ")")
    _assert_bars_match(ax, _expected_bars(panel, "condition", "lm_init", ["l (pretrained)", "l (random)"]))


def test_depth_bars_bin_categories_by_their_number_of_leaves(drawn):
    tables = synthetic_tables(synthetic_metrics(**GRID | {"shuffles": ("original",)}))
    figures.depth_figure(tables.metrics, tables.pairs, "depth.png")
    ax = _axes(drawn["depth.png"])["absolute · held-out hypernyms"]
    sizes = tables.pairs.groupby("hypernym")["concept"].nunique()  # 1, 2, 3, 4, 5 leaves
    bins = pd.qcut(sizes, q=4, duplicates="drop")
    label = {h: f"{int(np.floor(i.left)) + 1}–{int(i.right)} leaves" if int(np.floor(i.left)) + 1 < int(i.right)
             else f"{int(i.right)} leaves" for h, i in bins.items()}  # fmt: skip
    metrics = tables.metrics
    panel = _rows(metrics, "unseen", "absolute")
    panel = panel.assign(size_bin=panel["category"].map(label))
    _assert_bars_match(ax, _expected_bars(panel, "size_bin", "condition", ["random50", "full"]))


def test_per_category_bars_are_mean_f1_over_seeds_with_majority_ticks(drawn):
    metrics = synthetic_metrics(**GRID | {"shuffles": ("original",)})
    figures.per_category_figure(metrics, "per_category.png")
    ax = _axes(drawn["per_category.png"])["e1 + l · absolute · held-out hypernyms"]
    panel = _rows(metrics, "unseen", "absolute")
    means = panel.groupby(["category", "condition"])["macro_f1"].mean()
    got = _bars(ax, horizontal=True)
    for category, values in got.items():
        assert values == pytest.approx([means[(category, c)] for c in ("random50", "full")]), category
    order = [t.get_text() for t in ax.get_yticklabels()]
    all_rules = metrics[(metrics["init"] == "pretrained") & (metrics["test_set"] == "unseen")]
    assert order == list(all_rules.groupby("category")["macro_f1"].mean().sort_values(ascending=False).index)
    ticks = ax.collections[-1].get_offsets()
    assert np.asarray(ticks)[:, 0] == pytest.approx([1 / 3] * len(CATEGORIES))


def test_coherence_points_are_category_coherence_against_mean_held_out_f1(drawn):
    tables = synthetic_tables(synthetic_metrics(**GRID | {"shuffles": ("original", "across")}))
    metrics = tables.metrics[tables.metrics["rule"] == "absolute"]
    figures.coherence_figure(tables.coherence, metrics, "coherence.png")
    axes = [ax for ax in drawn["coherence.png"].axes if ax.get_xlabel() == "visual coherence (centred)"]
    ax = next(ax for ax in axes if ax.get_title() == "e1 + l · across")
    f1 = metrics[(metrics["test_set"] == "unseen") & (metrics["init"] == "pretrained")]
    f1 = f1[(f1["shuffle"] == "across") & (f1["condition"] == "full")].groupby("category")["macro_f1"].mean()
    coherence = tables.coherence.query("centering == 'centred' and shuffle == 'across'")
    expected = coherence.set_index("category")["coherence"].to_frame().join(f1)
    points = next(c for c in ax.collections if c.get_label().startswith("full:"))
    drawn_points = sorted(map(tuple, np.round(points.get_offsets(), 9)))
    assert drawn_points == sorted(map(tuple, np.round(expected.to_numpy(), 9)))
    pearson = np.corrcoef(expected["coherence"], expected["macro_f1"])[0, 1]
    assert points.get_label() == f"full: r={pearson:.2f} (n={len(CATEGORIES)})"


def test_coherence_shuffle_bars_are_mean_coherence_per_shuffle_and_encoder(drawn):
    coherence = synthetic_tables(synthetic_metrics(**GRID | {"encoders": ("e1", "e2")})).coherence
    figures.coherence_shuffle_figure(coherence, "coherence_shuffles.png")
    ax = _axes(drawn["coherence_shuffles.png"])["Visual coherence of categories (raw)"]
    panel = coherence[coherence["centering"] == "raw"]
    _assert_bars_match(ax, _expected_bars(panel, "shuffle", "encoder", ["e1", "e2"], y="coherence"))


def test_textprobe_points_are_the_summary_accuracies_per_phrasing(drawn):
    summary = pd.DataFrame(
        [
            {"lm": "l", "init": init, "probe": "yesno", "rule": "absolute", "scope": "all", "phrasing": phrasing,
             "accuracy": accuracy, "ci_low": accuracy - 0.1, "ci_high": accuracy + 0.05}
            for init, phrasings in (("pretrained", {"type_of": 0.8, "plural": 0.7, "all": 0.75}),
                                    ("random", {"type_of": 0.5, "plural": 0.45, "all": 0.48}))
            for phrasing, accuracy in phrasings.items()
        ]
    )  # fmt: skip
    figures.textprobe_figure(summary, "textprobe.png")
    ax = _axes(drawn["textprobe.png"])["yesno · absolute"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["plural", "type_of", "all"]
    points = {container.get_label(): list(container.lines[0].get_ydata()) for container in ax.containers}
    assert points == {
        "l (pretrained)": pytest.approx([0.7, 0.8, 0.75]),
        "l (random)": pytest.approx([0.45, 0.5, 0.48]),
    }


def test_naming_bars_are_the_headline_pair_accuracies(drawn):
    grid = GRID | {"conditions": ("full",), "shuffles": ("original",), "readouts": ("naming",)}
    table = headline(synthetic_metrics(**grid))
    figures.naming_figure(table, "naming.png")
    ax = _axes(drawn["naming.png"])["l · trained on yesno · paired_calibrated · held-out hypernyms"]
    rows = table[(table["rule"] == "paired_calibrated") & (table["test_set"] == "unseen")].set_index("init")
    assert _bars(ax) == {"e1": pytest.approx(list(rows.loc[["pretrained", "random"], "pair_accuracy"]))}


def _dynamics() -> pd.DataFrame:
    rows = []
    for init, rule, test_set, epoch in pd.MultiIndex.from_product(
        [("pretrained", "random"), ("absolute", "paired"), ("leaf", "unseen"), (0, 1, 2)]
    ):
        score = 0.5 + 0.1 * epoch * (init == "pretrained") + 0.01 * (rule == "paired") + 0.02 * (test_set == "leaf")
        rows.append(
            {"encoder": "e1", "lm": "l", "condition": "full", "shuffle": "original", "init": init, "rule": rule,
             "test_set": test_set, "step": 10 * epoch, "epoch": epoch, "macro_f1": score, "ci_low": score - 0.1,
             "ci_high": score + 0.1, "pair_accuracy": score + 0.05, "pair_ci_low": score, "pair_ci_high": score + 0.1,
             "majority_macro_f1": 0.4}
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_dynamics_lines_are_each_rules_score_per_epoch(drawn):
    table = _dynamics()
    figures.dynamics_figure(table, "dynamics.png")
    axes = _axes(drawn["dynamics.png"])
    for title, rule, test_set, score in (
        ("absolute · held-out hypernyms", "absolute", "unseen", "macro_f1"),
        ("paired · leaves", "paired", "leaf", "pair_accuracy"),
    ):
        panel = table[(table["rule"] == rule) & (table["test_set"] == test_set)]
        expected = {
            ((0.0, 1.0, 2.0), tuple(np.round(rows.sort_values("epoch")[score], 9))) for _, rows in panel.groupby("init")
        }
        expected.add(((0.0, 1.0, 2.0), (0.4, 0.4, 0.4)) if score == "macro_f1" else ((0.0, 1.0), (0.5, 0.5)))
        assert _lines(axes[title]) == expected, title


DATA_TESTS = {
    "deprivation": test_deprivation_lines_are_the_headline_rows,
    "shuffles": test_shuffle_bars_are_mean_f1_per_condition_and_shuffle_with_t_intervals,
    "encoders": test_encoder_bars_are_mean_f1_per_condition_and_encoder,
    "lms": test_lm_bars_are_mean_f1_per_condition_lm_and_init,
    "depth": test_depth_bars_bin_categories_by_their_number_of_leaves,
    "per_category": test_per_category_bars_are_mean_f1_over_seeds_with_majority_ticks,
    "coherence": test_coherence_points_are_category_coherence_against_mean_held_out_f1,
    "coherence_shuffles": test_coherence_shuffle_bars_are_mean_coherence_per_shuffle_and_encoder,
    "textprobe": test_textprobe_points_are_the_summary_accuracies_per_phrasing,
    "naming": test_naming_bars_are_the_headline_pair_accuracies,
    "dynamics": test_dynamics_lines_are_each_rules_score_per_epoch,
}


def test_every_figure_has_a_data_test():
    assert set(DATA_TESTS) == set(figures.FIGURES)


def test_save_is_atomic(tmp_path, monkeypatch):
    fig, _ = plt.subplots()

    def broken(target, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        figures._save(fig, tmp_path / "figure.png")
    assert list(tmp_path.iterdir()) == []
