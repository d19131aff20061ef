"""The paper's figures (docs/protocol.md §13) from the tidy analysis tables, with seaborn on the Agg backend.

Every function takes tables and an output path, draws whatever part of the grid exists, and writes a
labelled placeholder instead of failing when its facet is absent from the experiment grid. Intervals
are the t-based 95% CIs of docs/protocol.md §11 (`metrics.t_interval`), never seaborn's bootstrap, and every
number printed on a figure is computed from the tables. PNGs carry no timestamp or version metadata.
Every F1 figure shows each decision rule (`taxvlm.evaluation.decision.RULES`) in its own panels; the paper's
figures are the `absolute` ones. The paper's figures read the yes/no readout; the `naming` figure reads
naming by likelihood (LiMBeR's leaf vs hypernym naming, `taxvlm.evaluation.readouts`).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from taxvlm.analysis.coherence import CENTERINGS  # noqa: E402
from taxvlm.analysis.dynamics import NO_YESNO_RUNS, RULE_SCORES  # noqa: E402
from taxvlm.analysis.metrics import SHUFFLE_ORDER, TEST_SET_ORDER, t_interval  # noqa: E402
from taxvlm.analysis.stats import correlations  # noqa: E402
from taxvlm.analysis.tables import AnalysisTables, absolute_rule, only_readout  # noqa: E402
from taxvlm.evaluation.decision import RULES  # noqa: E402
from taxvlm.io import atomic_path  # noqa: E402

PathLike = str | os.PathLike[str]
TEST_SET_LABELS: dict[str, str] = {
    "leaf": "leaves", "seen": "seen hypernyms", "unseen": "held-out hypernyms", "null": "held-out pairs, null images",
}
INIT_DASHES: dict[str, str | tuple[float, float]] = {"pretrained": "", "random": (1, 2)}
INIT_STYLES: dict[str, str] = {"pretrained": "-", "random": ":"}
_DPI = 110


def _save(fig: plt.Figure, path: PathLike) -> None:
    """Write the PNG through `taxvlm.io.atomic_path`, so a killed job never leaves half a figure that
    the next run would trust; the format is named because the temporary file has no `.png` suffix."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def placeholder(path: PathLike, title: str, message: str = "not in this grid") -> None:
    """A small figure that says why the real one is missing (keeps report outputs complete)."""
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.axis("off")
    ax.text(0.5, 0.6, title, ha="center", va="center", fontsize=12, weight="bold")
    ax.text(0.5, 0.3, message, ha="center", va="center", fontsize=10, color="0.4")
    _save(fig, path)


def _ordered(values: pd.Series, preferred: Sequence[str]) -> list[str]:
    present = list(pd.unique(values))
    return [v for v in preferred if v in present] + sorted(v for v in present if v not in preferred)


def _conditions(frame: pd.DataFrame) -> list[str]:
    """Conditions from least to most deprived (none … full), random before systematic at equal %."""
    table = frame[["condition", "pct_deprived", "condition_family"]].drop_duplicates()
    return list(table.sort_values(["pct_deprived", "condition_family", "condition"])["condition"])


def _model(frame: pd.DataFrame) -> pd.Series:
    return frame["encoder"] + " + " + frame["lm"]


def _by_rule(frame: pd.DataFrame, column: str) -> pd.Series:
    """`column` · rule: a panel-row label that splits the figure by decision rule."""
    return frame[column] + " · " + frame["rule"]


def _grid(n_rows: int, n_cols: int, width: float = 4.2, height: float = 3.2) -> tuple[plt.Figure, np.ndarray]:
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False, sharey=True)
    return fig, axes


def deprivation_figure(headline: pd.DataFrame, path: PathLike) -> None:
    """Macro-F1 vs % deprived: one row per condition family (random, random-pair, systematic) and
    decision rule, one column per test set; `none` (0%) and `full` (100%) anchor every row. Colour =
    encoder + LM, solid = pretrained LM, dotted = random-init LM, shaded = 95% CI, dashed black =
    majority baseline."""
    data = headline[headline["shuffle"] == "original"].assign(model=lambda f: _model(f))
    if data.empty:
        placeholder(path, "F1 vs % deprived", "no original-shuffle runs in this grid")
        return
    families = [f for f in ("random", "randompair", "systematic") if f in set(data["condition_family"])]
    test_sets = _ordered(data["test_set"], TEST_SET_ORDER)
    anchors = data[data["condition_family"].isin(["none", "full"])]
    panel_rows = list(itertools.product(families or ["none + full only"], _ordered(data["rule"], RULES)))
    fig, axes = _grid(len(panel_rows), len(test_sets))
    palette = dict(zip(sorted(data["model"].unique()), itertools.cycle(sns.color_palette("colorblind"))))
    for r, (family, rule) in enumerate(panel_rows):
        for c, test_set in enumerate(test_sets):
            ax = axes[r, c]
            panel = pd.concat([data[data["condition_family"] == family], anchors])
            panel = panel[(panel["test_set"] == test_set) & (panel["rule"] == rule)].sort_values("pct_deprived")
            ax.set_title(f"{family} · {rule} · {TEST_SET_LABELS.get(test_set, test_set)}", fontsize=10)
            if panel.empty:
                ax.text(0.5, 0.5, "not in this grid", ha="center", transform=ax.transAxes, color="0.4")
                continue
            sns.lineplot(
                panel,
                x="pct_deprived",
                y="macro_f1",
                hue="model",
                style="init",
                palette=palette,
                dashes=INIT_DASHES,
                markers=True,
                errorbar=None,
                ax=ax,
                legend=(r, c) == (0, 0),
            )
            for (model, _), line in panel.groupby(["model", "init"]):
                ax.fill_between(line["pct_deprived"], line["ci_low"], line["ci_high"], color=palette[model], alpha=0.15)
            majority = panel.groupby("pct_deprived")["majority_macro_f1"].mean()
            ax.plot(majority.index, majority.to_numpy(), "k--", lw=1, label="majority")
            ax.set(xlabel="% deprived", ylabel="macro-F1", ylim=(0, 1.02), xlim=(-3, 103))
    fig.tight_layout()
    _save(fig, path)


def _bars(
    data: pd.DataFrame,
    x: str,
    hue: str,
    col: str,
    row: str | None,
    path: PathLike,
    title: str,
    x_order: Sequence[str] = (),
    hue_order: Sequence[str] = (),
) -> None:
    """Mean macro-F1 bars with t-based 95% CIs, faceted, and the majority baseline as a black dash per
    x group (the baseline depends on the test set, not on the model)."""
    rows = _ordered(data[row], ()) if row else [None]
    cols = _ordered(data[col], TEST_SET_ORDER)
    x_levels, hue_levels = _ordered(data[x], x_order), _ordered(data[hue], hue_order)
    fig, axes = _grid(len(rows), len(cols), width=max(4.2, 0.9 * len(x_levels) * max(1, len(hue_levels) / 2)))
    for r, row_level in enumerate(rows):
        for c, col_level in enumerate(cols):
            ax = axes[r, c]
            panel = data[data[col] == col_level]
            panel = panel[panel[row] == row_level] if row else panel
            ax.set_title(
                " · ".join(str(v) for v in (row_level, TEST_SET_LABELS.get(col_level, col_level)) if v), fontsize=10
            )
            if panel.empty:
                ax.text(0.5, 0.5, "not in this grid", ha="center", transform=ax.transAxes, color="0.4")
                continue
            order = [level for level in x_levels if level in set(panel[x])]
            sns.barplot(
                panel,
                x=x,
                y="macro_f1",
                hue=hue,
                order=order,
                hue_order=hue_levels,
                errorbar=t_interval,
                palette="colorblind",
                ax=ax,
                legend=(r, c) == (0, 0),
            )
            majority = panel.groupby(x)["majority_macro_f1"].mean()
            for position, level in enumerate(order):
                ax.hlines(majority[level], position - 0.4, position + 0.4, colors="k", linestyles="dashed", lw=1)
            ax.set(xlabel=x.replace("_", " "), ylabel="macro-F1", ylim=(0, 1.02))
            ax.tick_params(axis="x", rotation=30)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def shuffles_figure(metrics: pd.DataFrame, path: PathLike) -> None:
    """Counterfactual shuffles: hypernym macro-F1 per condition under original / within / across."""
    data = metrics[(metrics["init"] == "pretrained") & metrics["test_set"].isin(["seen", "unseen"])]
    if data["shuffle"].nunique() < 2:
        placeholder(path, "Counterfactual shuffles", "fewer than two shuffles in this grid")
        return
    _bars(
        data.assign(model=_model(data)).assign(model_rule=lambda f: _by_rule(f, "model")),
        "condition",
        "shuffle",
        "test_set",
        "model_rule",
        path,
        "Counterfactual shuffles (pretrained LM; dashes: majority baseline)",
        _conditions(data),
        SHUFFLE_ORDER,
    )


def encoder_figure(metrics: pd.DataFrame, path: PathLike) -> None:
    """Encoder comparison: macro-F1 per condition and encoder (pretrained LM, original shuffle)."""
    data = metrics[(metrics["init"] == "pretrained") & (metrics["shuffle"] == "original")]
    if data.empty:
        placeholder(path, "Encoder comparison", "no pretrained-LM original-shuffle runs in this grid")
        return
    _bars(
        data.assign(lm_rule=_by_rule(data, "lm")),
        "condition",
        "encoder",
        "test_set",
        "lm_rule",
        path,
        "Encoders (pretrained LM, original shuffle)",
        _conditions(data),
    )


def lm_figure(metrics: pd.DataFrame, path: PathLike) -> None:
    """LM comparison: macro-F1 per condition, LM and init (original shuffle), one row per encoder."""
    data = metrics[metrics["shuffle"] == "original"]
    if data.empty:
        placeholder(path, "LM comparison", "no original-shuffle runs in this grid")
        return
    _bars(
        data.assign(lm_init=data["lm"] + " (" + data["init"] + ")", encoder_rule=_by_rule(data, "encoder")),
        "condition",
        "lm_init",
        "test_set",
        "encoder_rule",
        path,
        "Language models (original shuffle)",
        _conditions(data),
    )


def _size_label(low: int, high: int) -> str:
    return f"{low}–{high} leaves" if low < high else f"{high} leaves"


def depth_figure(metrics: pd.DataFrame, pairs: pd.DataFrame | None, path: PathLike) -> None:
    """Hypernym macro-F1 by category size (number of member leaves, binned into up to 4 quantile bins)
    — the depth proxy: pairs.tsv carries no WordNet depth, and broader categories have more leaves."""
    data = metrics[
        (metrics["init"] == "pretrained")
        & (metrics["shuffle"] == "original")
        & metrics["test_set"].isin(["seen", "unseen"])
    ]
    if pairs is None or data.empty:
        placeholder(path, "By taxonomic breadth", "no hypernym rows or no taxonomy in this grid")
        return
    sizes = pairs.groupby("hypernym")["concept"].nunique()
    bins = pd.qcut(sizes, q=min(4, sizes.nunique()), duplicates="drop")
    labels = {
        interval: _size_label(int(np.floor(interval.left)) + 1, int(interval.right)) for interval in bins.cat.categories
    }
    size_bin = data["category"].map(bins.map(labels).astype(str))
    _bars(
        data.assign(size_bin=size_bin).dropna(subset=["size_bin"]),
        "size_bin",
        "condition",
        "test_set",
        "rule",
        path,
        "By category size (pretrained LM, original shuffle)",
        list(labels.values()),
        _conditions(data),
    )


def per_category_figure(metrics: pd.DataFrame, path: PathLike) -> None:
    """Held-out macro-F1 of every hypernym (mean over seeds) per condition, one panel row per model and
    one column per decision rule; black ticks mark the category's majority baseline."""
    test_set = "unseen" if (metrics["test_set"] == "unseen").any() else "seen"
    data = metrics[
        (metrics["test_set"] == test_set) & (metrics["init"] == "pretrained") & (metrics["shuffle"] == "original")
    ]
    if data.empty:
        placeholder(path, "Per-category F1", "no hypernym rows in this grid")
        return
    conditions = _conditions(data)
    data = (
        data.assign(model=_model(data))
        .groupby(["model", "rule", "condition", "category"], as_index=False)[["macro_f1", "majority_macro_f1"]]
        .mean()
    )
    order = list(data.groupby("category")["macro_f1"].mean().sort_values(ascending=False).index)
    models, rules = sorted(data["model"].unique()), _ordered(data["rule"], RULES)
    fig, axes = plt.subplots(
        len(models),
        len(rules),
        figsize=(5 * len(rules), (1.5 + 0.22 * len(order)) * len(models)),
        squeeze=False,
        sharey=True,
    )
    for ax, (model, rule) in zip(axes.flat, itertools.product(models, rules)):
        panel = data[(data["model"] == model) & (data["rule"] == rule)]
        sns.barplot(
            panel,
            y="category",
            x="macro_f1",
            hue="condition",
            order=order,
            hue_order=conditions,
            errorbar=None,
            palette="colorblind",
            ax=ax,
        )
        majority = panel.groupby("category")["majority_macro_f1"].mean().reindex(order)
        ax.scatter(majority.to_numpy(), np.arange(len(order)), marker="|", color="k", s=80, label="majority")
        ax.set(title=f"{model} · {rule} · {TEST_SET_LABELS[test_set]}", xlabel="macro-F1", ylabel="", xlim=(0, 1.02))
    fig.tight_layout()
    _save(fig, path)


def coherence_figure(coherence: pd.DataFrame | None, metrics: pd.DataFrame, path: PathLike) -> None:
    """Held-out macro-F1 (mean over seeds) vs visual coherence per category; rows = encoder + LM and
    centering (raw, centred), columns = shuffle, colour = condition; the legend gives Pearson r and n
    of each condition."""
    held_out = metrics[(metrics["test_set"] == "unseen") & (metrics["init"] == "pretrained")]
    if coherence is None or coherence.empty or held_out.empty:
        placeholder(path, "Coherence vs held-out F1", "no coherence table or no held-out rows in this grid")
        return
    data = held_out.groupby(["encoder", "lm", "condition", "shuffle", "category"], as_index=False)["macro_f1"].mean()
    data = data.merge(
        coherence[["encoder", "centering", "shuffle", "category", "coherence"]], on=["encoder", "shuffle", "category"]
    )
    if data.empty:
        placeholder(path, "Coherence vs held-out F1", "no category has both a coherence and a held-out F1")
        return
    data = data.merge(held_out[["condition", "pct_deprived", "condition_family"]].drop_duplicates(), on="condition")
    data = data.assign(model=_model(data))
    keys = ["model", "centering", "shuffle", "condition"]
    r = correlations(data, "coherence", "macro_f1", by=keys).set_index(keys)
    palette = dict(zip(_conditions(data), itertools.cycle(sns.color_palette("colorblind"))))
    panel_rows = list(itertools.product(sorted(data["model"].unique()), _ordered(data["centering"], CENTERINGS)))
    shuffles = _ordered(data["shuffle"], SHUFFLE_ORDER)
    fig, axes = _grid(len(panel_rows), len(shuffles))
    for i, (model, centering) in enumerate(panel_rows):
        for j, shuffle in enumerate(shuffles):
            ax = axes[i, j]
            panel = data[(data["model"] == model) & (data["centering"] == centering) & (data["shuffle"] == shuffle)]
            ax.set_title(f"{model} · {shuffle}", fontsize=10)
            for condition in [c for c in palette if c in set(panel["condition"])]:
                points, stats_row = panel[panel["condition"] == condition], r.loc[(model, centering, shuffle, condition)]
                ax.scatter(
                    points["coherence"],
                    points["macro_f1"],
                    s=14,
                    color=palette[condition],
                    label=f"{condition}: r={stats_row['pearson_r']:.2f} (n={int(stats_row['n'])})",
                )
            ax.set(xlabel=f"visual coherence ({centering})", ylabel="held-out macro-F1", ylim=(-0.02, 1.02))
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def coherence_shuffle_figure(coherence: pd.DataFrame | None, path: PathLike) -> None:
    """Mean category coherence under each shuffle per encoder (t-based 95% CI over categories), one
    panel per centering: raw cosines and cosines after subtracting the mean training feature."""
    if coherence is None or coherence.empty:
        placeholder(path, "Coherence by shuffle", "no coherence table in this grid")
        return
    centerings = _ordered(coherence["centering"], CENTERINGS)
    width = 1.6 + 1.2 * coherence["shuffle"].nunique() * coherence["encoder"].nunique()
    fig, axes = plt.subplots(1, len(centerings), figsize=(width * len(centerings), 3.2), squeeze=False)
    for ax, centering in zip(axes[0], centerings):
        sns.barplot(
            coherence[coherence["centering"] == centering].dropna(subset=["coherence"]),
            x="shuffle",
            y="coherence",
            hue="encoder",
            order=_ordered(coherence["shuffle"], SHUFFLE_ORDER),
            errorbar=t_interval,
            palette="colorblind",
            ax=ax,
        )
        ax.set(ylabel="mean pairwise cosine", title=f"Visual coherence of categories ({centering})")
    fig.tight_layout()
    _save(fig, path)


def textprobe_figure(summary: pd.DataFrame | None, path: PathLike) -> None:
    """Text-only probe accuracy per phrasing (Wilson 95% CI), one panel per probe × decision rule, one
    colour per LM × init; 0.5 = chance."""
    data = None if summary is None else summary[summary["scope"] == "all"]
    if data is None or data.empty:
        placeholder(path, "Text-only taxonomy probes", "no text probe in this grid")
        return
    data = data.assign(label=data["lm"] + " (" + data["init"] + ")", panel=data["probe"] + " · " + data["rule"])
    data = data.astype({"accuracy": float, "ci_low": float, "ci_high": float})
    probes, labels = sorted(data["panel"].unique()), sorted(data["label"].unique())
    fig, axes = _grid(1, len(probes), width=4.8)
    width = 0.8 / len(labels)
    for ax, probe in zip(axes[0], probes):
        panel = data[data["panel"] == probe]
        phrasings = (
            _ordered(panel["phrasing"], ())
            if "all" not in set(panel["phrasing"])
            else [*sorted(set(panel["phrasing"]) - {"all"}), "all"]
        )
        for k, label in enumerate(labels):
            rows = panel[panel["label"] == label].set_index("phrasing").reindex(phrasings)
            x = np.arange(len(phrasings)) - 0.4 + width * (k + 0.5)
            ax.errorbar(
                x,
                rows["accuracy"],
                yerr=[rows["accuracy"] - rows["ci_low"], rows["ci_high"] - rows["accuracy"]],
                fmt="o",
                capsize=3,
                color=sns.color_palette("colorblind")[k % 10],
                label=label,
            )
        ax.axhline(0.5, color="k", ls="--", lw=1)
        ax.set_xticks(np.arange(len(phrasings)), phrasings, rotation=30)
        ax.set(title=probe, ylabel="accuracy", ylim=(0, 1.02))
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def naming_figure(headline: pd.DataFrame, path: PathLike) -> None:
    """Naming by likelihood: pair accuracy (t-based 95% CI over categories × seeds) of leaves, seen and
    held-out hypernyms per encoder (and condition · shuffle where the grid has several), the pretrained
    LM beside its random-init twin (the chance level); one panel row per LM × objective × paired rule,
    one column per test set."""
    data = headline[headline["readout"] == "naming"].dropna(subset=["pair_accuracy"])
    if data.empty:
        placeholder(path, "Naming by likelihood", "no naming readout in this grid (evaluation.naming)")
        return
    label = data["encoder"]
    for key in ("condition", "shuffle"):
        label = label + (" · " + data[key] if data[key].nunique() > 1 else "")
    data = data.assign(label=label, panel=data["lm"] + " · trained on " + data["objective"] + " · " + data["rule"])
    panel_rows, test_sets = sorted(data["panel"].unique()), _ordered(data["test_set"], TEST_SET_ORDER)
    labels, inits = sorted(data["label"].unique()), _ordered(data["init"], list(INIT_DASHES))
    fig, axes = _grid(len(panel_rows), len(test_sets), width=max(4.2, 0.5 * len(labels) * len(inits)))
    colours = dict(zip(inits, sns.color_palette("colorblind")))
    width = 0.8 / len(inits)
    for (r, panel_row), (c, test_set) in itertools.product(enumerate(panel_rows), enumerate(test_sets)):
        ax = axes[r, c]
        panel = data[(data["panel"] == panel_row) & (data["test_set"] == test_set)]
        ax.set_title(f"{panel_row} · {TEST_SET_LABELS.get(test_set, test_set)}", fontsize=9)
        for k, init in enumerate(inits):
            rows = panel[panel["init"] == init].set_index("label").reindex(labels)
            x = np.arange(len(labels)) - 0.4 + width * (k + 0.5)
            ax.bar(x, rows["pair_accuracy"], width, color=colours[init], label=init)
            low, high = rows["pair_accuracy"] - rows["pair_ci_low"], rows["pair_ci_high"] - rows["pair_accuracy"]
            ax.errorbar(x, rows["pair_accuracy"], yerr=[low, high], fmt="none", ecolor="k", capsize=2)
        ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        ax.set(ylabel="pair accuracy", ylim=(0, 1.02))
        if (r, c) == (0, 0):
            ax.legend(fontsize=7)
    fig.suptitle("Naming by likelihood: the true name vs its matched foil (twin = chance level)", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def dynamics_figure(dynamics: pd.DataFrame | None, path: PathLike) -> None:
    """Readouts along training (`taxvlm.analysis.dynamics`): each rule's score (macro-F1 for the
    absolute rule, pair accuracy for the paired ones; t-based 95% CI bands over seeds × categories) vs
    the training epoch (conditions differ in steps per epoch), one row per rule, one column per test
    set; one colour per encoder + LM · condition · shuffle, pretrained solid, random-init dotted (the
    twin is each rule's chance level); dashed: that line's majority baseline (macro-F1) or 0.5 (pair
    accuracy). The last point is the run's result."""
    if dynamics is None or dynamics.empty:
        placeholder(path, "Readouts along training", NO_YESNO_RUNS)
        return
    data = dynamics.assign(label=_model(dynamics) + " · " + dynamics["condition"] + " · " + dynamics["shuffle"])
    rules, test_sets = _ordered(data["rule"], RULES), _ordered(data["test_set"], TEST_SET_ORDER)
    labels = sorted(data["label"].unique())
    colours = dict(zip(labels, itertools.cycle(sns.color_palette("colorblind"))))
    fig, axes = _grid(len(rules), len(test_sets))
    for (r, rule), (c, test_set) in itertools.product(enumerate(rules), enumerate(test_sets)):
        ax, (score, low, high) = axes[r, c], RULE_SCORES[rule]
        panel = data[(data["rule"] == rule) & (data["test_set"] == test_set)]
        for (label, init), line in panel.groupby(["label", "init"], sort=True):
            line = line.sort_values("epoch")
            ax.plot(line["epoch"], line[score], INIT_STYLES[init], color=colours[label], marker="o", ms=3)
            ax.fill_between(line["epoch"], line[low], line[high], color=colours[label], alpha=0.12, lw=0)
            if score == "macro_f1" and init == "pretrained":
                ax.plot(line["epoch"], line["majority_macro_f1"], "--", color=colours[label], lw=0.8)
        if score != "macro_f1":
            ax.axhline(0.5, ls="--", color="0.3", lw=0.8)
        ax.set_title(f"{rule} · {TEST_SET_LABELS.get(test_set, test_set)}", fontsize=9)
        ax.set(xlabel="training epoch", ylabel=score.replace("_", " "), ylim=(0, 1.02))
    handles = [plt.Line2D([], [], color=colours[label], label=label) for label in labels] + [
        plt.Line2D([], [], color="0.3", ls=style, label=label)
        for style, label in ((INIT_STYLES["pretrained"], "pretrained"), (INIT_STYLES["random"], "random-init twin"),
                             ("--", "majority baseline / 0.5"))  # fmt: skip
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=7, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Readouts along training (points fixed by config; the last point is the result)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _save(fig, path)


def _yesno(tables: AnalysisTables) -> AnalysisTables:
    return only_readout(tables, "yesno")


FIGURES: dict[str, Callable[[AnalysisTables, PathLike], None]] = {
    "deprivation": lambda t, p: deprivation_figure(_yesno(t).headline, p),
    "shuffles": lambda t, p: shuffles_figure(_yesno(t).metrics, p),
    "encoders": lambda t, p: encoder_figure(_yesno(t).metrics, p),
    "lms": lambda t, p: lm_figure(_yesno(t).metrics, p),
    "coherence": lambda t, p: coherence_figure(t.coherence, absolute_rule(t).metrics, p),
    "coherence_shuffles": lambda t, p: coherence_shuffle_figure(t.coherence, p),
    "depth": lambda t, p: depth_figure(_yesno(t).metrics, t.pairs, p),
    "per_category": lambda t, p: per_category_figure(_yesno(t).metrics, p),
    "textprobe": lambda t, p: textprobe_figure(t.textprobe, p),
    "naming": lambda t, p: naming_figure(t.headline, p),
    "dynamics": lambda t, p: dynamics_figure(t.dynamics, p),
}


def make_figures(tables: AnalysisTables, outputs: Mapping[str, PathLike]) -> None:
    """Draw every figure named in `outputs` (keys from FIGURES) to its path."""
    unknown = set(outputs) - set(FIGURES)
    if unknown:
        raise KeyError(f"unknown figures: {sorted(unknown)}")
    sns.set_theme(style="whitegrid", context="paper")
    for name, path in outputs.items():
        FIGURES[name](tables, path)
