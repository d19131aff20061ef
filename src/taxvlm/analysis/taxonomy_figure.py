"""Figure of the taxonomy for the report: hypernyms per leaf and leaves per hypernym."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from taxvlm.data.errors import read_table  # noqa: E402
from taxvlm.io import atomic_path  # noqa: E402


def plot_taxonomy(pairs_tsv: Path, out_png: Path) -> None:
    """Left: histogram of the number of hypernyms per leaf; right: leaves per hypernym, sorted."""
    pairs = read_table(pairs_tsv, ["concept", "hypernym"])
    per_leaf = pairs.groupby("concept").size()
    per_hypernym = pairs.groupby("hypernym").size().sort_values(ascending=False, kind="stable")
    height = max(4.0, 0.22 * len(per_hypernym))
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(12, height), gridspec_kw={"width_ratios": [1, 1.4]}
    )
    sns.countplot(x=per_leaf.values, ax=left, color="tab:blue")
    left.set(xlabel="hypernyms per leaf", ylabel="leaves", title=f"{len(per_leaf)} leaves")
    sns.barplot(x=per_hypernym.values, y=per_hypernym.index, ax=right, color="tab:orange")
    right.set(xlabel="leaves", ylabel="", title=f"{len(per_hypernym)} hypernyms, {len(pairs)} pairs")
    figure.tight_layout()
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
