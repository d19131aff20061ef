"""Report figures and tables of the compositional stage, from accuracy.tsv (`model`, `type`, `n`,
`correct`, `accuracy`, `ci_low`, `ci_high`) and thetas.tsv (`model`, `step`, `epoch`, `type`, `theta`).

- `compositional_accuracy`: accuracy per negative type per model (Wilson 95% CIs), chance 0.5;
- `compositional_thetas`: the adaptive margins θ_k over training steps (CE-CLIP's Fig. 5b);
- `compositional_taxonomic`: same-category (`cohyponym`) vs cross-category negatives per model.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from taxvlm.analysis.figures import _save, placeholder  # noqa: E402
from taxvlm.compositional.negatives import TYPES  # noqa: E402
from taxvlm.io import atomic_path, read_tsv, write_text  # noqa: E402

PathLike = str | os.PathLike[str]
NUMERIC = ("n", "correct", "accuracy", "ci_low", "ci_high")


def read_accuracy(path: PathLike) -> pd.DataFrame:
    frame = read_tsv(path)
    return frame.astype({c: float for c in NUMERIC if c in frame.columns})


def _type_order(types: pd.Series) -> list[str]:
    known = [t for t in TYPES if t in set(types)]
    return known + sorted(set(types) - set(known))


def _bars(ax: plt.Axes, frame: pd.DataFrame, types: list[str]) -> None:
    """Grouped bars: one group per type, one bar per model, Wilson CI whiskers."""
    models = sorted(frame["model"].unique())
    width = 0.8 / max(1, len(models))
    for j, model in enumerate(models):
        rows = frame[frame["model"] == model].set_index("type").reindex(types)
        x = np.arange(len(types)) + (j - (len(models) - 1) / 2) * width
        err = np.vstack([rows["accuracy"] - rows["ci_low"], rows["ci_high"] - rows["accuracy"]])
        err = np.clip(err, 0, None)  # Wilson's bound at 100% can round to 1 - 1e-16
        ax.bar(x, rows["accuracy"], width, yerr=err, capsize=2, label=model)
    ax.axhline(0.5, color="0.5", ls=":", lw=1)
    ax.set_xticks(np.arange(len(types)), types, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (true caption > negative)")


def accuracy_figure(accuracy: pd.DataFrame, path: PathLike, title: str = "Compositional accuracy per type") -> None:
    if accuracy.empty:
        placeholder(path, title, "no scored model")
        return
    types = _type_order(accuracy["type"])
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(types) + 2), 4))
    _bars(ax, accuracy, types)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, path)


def taxonomic_figure(accuracy: pd.DataFrame, path: PathLike) -> None:
    title = "Same- vs cross-category taxonomic negatives"
    accuracy_figure(accuracy[accuracy["type"].isin(["cohyponym", "cross_category"])], path, title)


def theta_figure(thetas: pd.DataFrame, path: PathLike) -> None:
    title = "Adaptive margins θ_k over training (CE-CLIP Fig. 5b)"
    if thetas.empty:
        placeholder(path, title, "no contrastive model with hard negatives")
        return
    thetas = thetas.astype({"step": int, "theta": float})
    models = sorted(thetas["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.2), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        part = thetas[thetas["model"] == model]
        for kind in _type_order(part["type"]):
            rows = part[part["type"] == kind]
            ax.plot(rows["step"], rows["theta"], label=kind, lw=1)
        ax.set_title(model, fontsize=8)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("θ_k (scaled logits)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title)
    _save(fig, path)


def accuracy_table(accuracy: pd.DataFrame, csv_path: PathLike, md_path: PathLike) -> None:
    """Wide table: one row per model, one `acc [low, high]` cell per type."""
    types = _type_order(accuracy["type"]) if not accuracy.empty else []
    cells = accuracy.assign(
        cell=[
            f"{a:.3f} [{lo:.3f}, {hi:.3f}] (n={int(n)})"
            for a, lo, hi, n in zip(accuracy["accuracy"], accuracy["ci_low"], accuracy["ci_high"], accuracy["n"])
        ]
    )
    wide = cells.pivot(index="model", columns="type", values="cell").reindex(columns=types).fillna("")
    with atomic_path(csv_path) as tmp:
        accuracy.to_csv(tmp, index=False, lineterminator="\n")
    write_text(_markdown(wide.reset_index()), md_path)


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return header + "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in frame.itertuples(index=False))
