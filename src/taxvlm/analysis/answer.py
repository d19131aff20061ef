"""The answer first: one table, one statement and one figure of the held-out hypernyms, per readout.

Read from `contrasts.tsv` (taxvlm.analysis.contrasts) and `trained_task.tsv`, on the unshuffled blocks
and without the lexical-overlap pairs (the verdicts' pair set; the score on all pairs stands beside).
Each row: the pretrained LM's score, its null, its random-init twin and the twin's null, the text upper
bound of both LMs, the differences pretrained − twin and pretrained − null with their CIs over
categories and a Wilcoxon p, the shuffle controls, the prior-only score, whether every arm learned its
trained task, and the verdict, which follows the order a careful reader checks in:
1. an upper bound whose CI is not above chance: this readout cannot test transfer for this LM;
2. an arm that did not learn its trained task: not a result;
3. transfer needs the pretrained score above its twin and above its null (both differences' CIs > 0).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from taxvlm.analysis.contrasts import PRIOR, RULE_CHANCE, select_rows  # noqa: E402
from taxvlm.analysis.metrics import READOUT_RULES  # noqa: E402
from taxvlm.io import atomic_path, write_text  # noqa: E402

PathLike = str | os.PathLike[str]
ROW_KEYS: tuple[str, ...] = ("encoder", "lm", "condition", "objective", "readout", "rule")
VERDICT_PAIRS = "no_overlap"
FIGURE_ARMS: tuple[tuple[str, str], ...] = (
    ("pretrained", "pretrained"),
    ("pretrained_null", "its null"),
    ("twin", "twin"),
    ("twin_null", "twin's null"),
    ("upper_bound", "upper bound"),
    ("twin_upper_bound", "twin's upper bound"),
)


def _cell(row: pd.Series | None, signed: bool = False) -> str:
    if row is None or math.isnan(row["estimate"]):
        return "—"
    sign = "+" if signed else ""
    text = f"{row['estimate']:{sign}.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return f"{text}, p={row['p_wilcoxon']:.3g}" if signed and not math.isnan(row["p_wilcoxon"]) else text


def _learned(trained: pd.DataFrame, keys: Mapping[str, str], init: str) -> tuple[int, int]:
    run = {key: keys[key] for key in ("encoder", "lm", "condition", "objective")}
    rows = select_rows(trained, **run, init=init, shuffle="original")
    return int(rows["learned"].sum()), len(rows)


def transfer_verdict(by_name: Mapping[str, pd.Series], learned: Mapping[str, tuple[int, int]], lm: str) -> str:
    """The verdict of the module docstring for one row (`by_name`: contrast name → its row)."""
    bound = by_name.get("upper_bound")
    if bound is None:
        return "no upper bound: cannot say whether this readout can show transfer"
    if bound["verdict"] != "above chance":
        return f"cannot test transfer: {lm}'s text upper bound is not above chance under this readout"
    for arm, (ok, total) in learned.items():
        if total and ok < total:
            return f"not a result: the {arm} learned its trained task in {ok} of {total} seeds"
    versus_twin, versus_null = by_name.get("pretrained-twin"), by_name.get("pretrained-null")
    if versus_twin is None or versus_null is None:
        return "no twin or no null in the grid: transfer cannot be judged"
    if versus_twin["verdict"] == "above" and versus_null["verdict"] == "above":
        return "transfer: the pretrained LM is above its twin and above its null"
    if versus_twin["verdict"] == "below":
        return "no transfer: the pretrained LM is below its twin"
    if versus_null["verdict"] != "above":
        return "no transfer: the pretrained LM is not above its null"
    return "no transfer detected: the pretrained LM is not above its twin"


def answer_rows(contrasts: pd.DataFrame, trained: pd.DataFrame) -> pd.DataFrame:
    """One row per unshuffled block and rule of its readout (module docstring)."""
    verdict_set = contrasts[contrasts["pairs"] == VERDICT_PAIRS]
    everything = contrasts[contrasts["pairs"] == "all"]
    original = verdict_set[verdict_set["shuffle"] == "original"]
    rows = []
    for keys, group in original.groupby(list(ROW_KEYS), sort=True):
        keys = dict(zip(ROW_KEYS, keys))
        if keys["rule"] not in READOUT_RULES[keys["readout"]]:
            continue
        by_name = {row["contrast"]: row for _, row in group.iterrows()}
        prior = _one(original, keys | {"rule": PRIOR}, "pretrained")
        learned = {"pretrained LM": _learned(trained, keys, "pretrained"), "twin": _learned(trained, keys, "random")}
        shuffles = {
            shuffle: _one(verdict_set[verdict_set["shuffle"] == shuffle], keys, "original-shuffle")
            for shuffle in sorted(set(verdict_set["shuffle"]) - {"original"})
        }
        pretrained = by_name.get("pretrained")
        counted = by_name.get("pretrained-twin", pretrained)  # n of the verdict's difference
        rows.append(
            keys
            | {
                "route": f"{keys['objective']} → {keys['readout']}",
                "pretrained": _cell(pretrained),
                "null": _cell(by_name.get("pretrained_null")),
                "twin": _cell(by_name.get("twin")),
                "twin null": _cell(by_name.get("twin_null")),
                "upper bound": _cell(by_name.get("upper_bound")),
                "twin upper bound": _cell(by_name.get("twin_upper_bound")),
                "pretrained − twin": _cell(by_name.get("pretrained-twin"), signed=True),
                "pretrained − null": _cell(by_name.get("pretrained-null"), signed=True),
                **{f"original − {shuffle}": _cell(row, signed=True) for shuffle, row in shuffles.items()},
                "prior only": _cell(prior),
                "pretrained, all pairs": _cell(
                    _one(everything[everything["shuffle"] == "original"], keys, "pretrained")
                ),
                "learned (pretrained, twin)": "{}/{}, {}/{}".format(*learned["pretrained LM"], *learned["twin"]),
                "n": (
                    f"{int(counted['n_categories'])} categories, {int(counted['n_leaves'])} (category, leaf) pairs, "
                    f"{counted['n_seeds']} seeds"
                    if counted is not None
                    else "—"
                ),
                "verdict": transfer_verdict(by_name, learned, keys["lm"]),
            }
        )
    return pd.DataFrame(rows)


def _one(contrasts: pd.DataFrame, keys: Mapping[str, str], name: str) -> pd.Series | None:
    found = select_rows(contrasts, **keys, contrast=name)
    return None if found.empty else found.iloc[0]


def answer_statement(rows: pd.DataFrame) -> str:
    """The report's first sentences: per readout and rule, the difference and the verdict."""
    if rows.empty:
        return "No held-out hypernym contrast in this grid.\n"
    lines = [
        "Held-out hypernyms (pair accuracy, without lexical-overlap pairs; CIs: hierarchical bootstrap over "
        "categories, leaves and seeds, 95%):"
    ]
    for _, row in rows.iterrows():
        shuffles = "; ".join(f"{c} {row[c]}" for c in rows.columns if c.startswith("original − ") and row[c] != "—")
        lines.append(
            f"- {row['encoder']} + {row['lm']}, {row['route']}, {row['rule']} ({row['condition']}): pretrained "
            f"{row['pretrained']} vs twin {row['twin']} (null {row['null']}; upper bound {row['upper bound']}); "
            f"pretrained − twin {row['pretrained − twin']}; pretrained − null {row['pretrained − null']}"
            + (f"; {shuffles}" if shuffles else "")
            + f"; n = {row['n']}. {row['verdict']}."
        )
    return "\n".join(lines) + "\n"


def answer_figure(contrasts: pd.DataFrame, path: PathLike) -> None:
    """Per unshuffled block and rule: each arm's score with its CI, the shuffled runs beside them, and
    the rule's chance as a dashed line."""
    shown = contrasts[(contrasts["pairs"] == VERDICT_PAIRS)]
    panels = [
        (keys, group)
        for keys, group in shown[shown["shuffle"] == "original"].groupby(list(ROW_KEYS), sort=True)
        if keys[-1] in READOUT_RULES[keys[-2]]
    ]
    n = max(len(panels), 1)
    n_cols = min(n, 3)
    n_rows = math.ceil(n / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.4 * n_cols, 3.8 * n_rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    for ax, (keys, group) in zip(axes.flat, panels):
        keys = dict(zip(ROW_KEYS, keys))
        arms = [(label, _one(group, {}, name)) for name, label in FIGURE_ARMS]
        for shuffle in sorted(set(shown["shuffle"]) - {"original"}):
            other = shown[(shown["shuffle"] == shuffle)]
            arms.append((shuffle, _one(other, {k: keys[k] for k in ROW_KEYS}, "pretrained")))
        arms = [(label, row) for label, row in arms if row is not None]
        for x, (label, row) in enumerate(arms):
            ax.errorbar(
                x, row["estimate"], yerr=[[row["estimate"] - row["ci_low"]], [row["ci_high"] - row["estimate"]]],
                fmt="o", capsize=3,
            )  # fmt: skip
        ax.axhline(RULE_CHANCE[keys["rule"]], ls="--", c="grey", lw=1)
        ax.set_xticks(range(len(arms)), [label for label, _ in arms], rotation=45, ha="right")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(
            f"{keys['encoder']} + {keys['lm']}, {keys['condition']}\n"
            f"{keys['objective']} → {keys['readout']}, {keys['rule']}",
            fontsize=9,
        )
        ax.set_ylabel("held-out pair accuracy")
    if not panels:
        axes[0][0].text(0.5, 0.5, "no held-out contrast in this grid", ha="center", va="center")
        axes[0][0].set_axis_off()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_answer(contrasts: pd.DataFrame, trained: pd.DataFrame, outputs: Mapping[str, PathLike]) -> pd.DataFrame:
    """answer.md / answer.csv (the table), answer.txt (the statement), answer.png (the figure)."""
    rows = answer_rows(contrasts, trained)
    shown = rows.drop(columns=["objective", "readout"], errors="ignore")
    with atomic_path(outputs["csv"]) as tmp:
        shown.to_csv(tmp, index=False)
    write_text(shown.to_markdown(index=False) + "\n" if not shown.empty else "_no held-out contrast_\n", outputs["md"])
    write_text(answer_statement(rows), outputs["statement"])
    answer_figure(contrasts, outputs["figure"])
    return rows
