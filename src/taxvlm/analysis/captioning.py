"""Report outputs of the captioning evaluation (`taxvlm.evaluation.captioning`): the stacked per-run scores, a
table of CIDEr-D / BLEU-4 means with t-based seed CIs, and a figure of example test images with their
reference and generated captions.

Kept apart from `taxvlm.evaluation.captioning` so that editing a table or the figure reruns no decoding job
(rules list the package modules their script imports as inputs).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from taxvlm.analysis.metrics import t_interval  # noqa: E402
from taxvlm.evaluation.captioning import METRICS  # noqa: E402
from taxvlm.io import atomic_path, read_tsv, write_tsv  # noqa: E402

PathLike = str | os.PathLike[str]
SCORE_COLUMNS = ("seed", "metric", "value", "n_images")  # per-run columns that are not run keys (but seed)
TABLE_COLUMNS = ["metric", "n_seeds", "mean", "ci_low", "ci_high"]
METRIC_LABELS = {"cider_d": "CIDEr-D", "bleu4": "BLEU-4"}
_DPI = 110


def collect_caption_scores(paths: Sequence[PathLike], out_path: PathLike) -> pd.DataFrame:
    """Stack the runs' caption_scores.tsv into one table (typed, sorted by run keys and metric)."""
    frames = [read_tsv(path) for path in paths]
    if not frames:
        raise ValueError("no caption_scores.tsv to collect: the grid has no caption runs")
    table = pd.concat(frames, ignore_index=True)
    table = table.astype({"seed": int, "value": float, "n_images": int})
    keys = [c for c in table.columns if c not in SCORE_COLUMNS]
    table = table.sort_values([*keys, "seed", "metric"], kind="stable", ignore_index=True)
    write_tsv(table, out_path)
    return table


def caption_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric over seeds per run configuration (every run key but the seed), with its
    t-based 95% CI (`t_interval`; NaN bounds with one seed)."""
    keys = [c for c in scores.columns if c not in SCORE_COLUMNS]
    rows = []
    for values, group in scores.groupby([*keys, "metric"], sort=True):
        low, high = t_interval(group["value"])
        rows.append(
            dict(zip([*keys, "metric"], values))
            | {"n_seeds": group["seed"].nunique(), "mean": group["value"].mean(), "ci_low": low, "ci_high": high}
        )
    return pd.DataFrame(rows, columns=[*keys, *TABLE_COLUMNS])


def caption_table_markdown(table: pd.DataFrame) -> pd.DataFrame:
    """The table laid out for reading: one row per configuration but init, and for every metric the
    pretrained LM beside its random-init twin as `mean [low, high]` (the mean alone with one seed)."""
    if table.empty:
        return table
    keys = [c for c in table.columns if c not in (*TABLE_COLUMNS, "init")]
    rows = []
    for values, group in table.groupby(keys, sort=True):
        row = dict(zip(keys, values if isinstance(values, tuple) else (values,)))
        for metric in METRICS:
            for init in ("pretrained", "random"):
                cell = group[(group["metric"] == metric) & (group["init"] == init)]
                row[f"{METRIC_LABELS[metric]}: {init}"] = _estimate(cell)
        row["n seeds"] = " / ".join(
            str(int(group.loc[group["init"] == init, "n_seeds"].max())) if (group["init"] == init).any() else "—"
            for init in ("pretrained", "random")
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _estimate(cell: pd.DataFrame) -> str:
    if cell.empty:
        return "—"
    row = cell.iloc[0]
    if pd.isna(row["ci_low"]):
        return f"{row['mean']:.3f}"
    return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def run_label(run: dict) -> str:
    return f"{run['encoder']} · {run['lm']} · {run['init']}"


def example_images(captions: Sequence[pd.DataFrame], images: pd.DataFrame, n: int) -> list[str]:
    """Up to `n` image ids captioned in every run, one per concept, the concepts spread evenly over the
    sorted concept list (the first image of each, by id)."""
    common = set.intersection(*(set(frame["image_id"]) for frame in captions))
    firsts = images[images["image_id"].isin(common)].sort_values("image_id").groupby("concept", sort=True).first()
    picks = np.unique(np.linspace(0, len(firsts) - 1, num=min(n, len(firsts))).round().astype(int))
    return list(firsts["image_id"].iloc[picks]) if len(firsts) else []


def caption_figure(
    examples: Sequence[tuple[str, pd.DataFrame]], images: pd.DataFrame, path: PathLike, n_images: int = 6
) -> None:
    """One row per example image (`images`: images.tsv): the image, then its reference caption(s) and
    the caption each labelled run generated."""
    chosen = example_images([frame for _, frame in examples], images, n_images)
    if not chosen:
        raise ValueError("no test image was captioned by every example run")
    paths = images.set_index("image_id")["path"]
    height = max(1.6, 0.22 * (len(examples) + 2))
    fig, axes = plt.subplots(
        len(chosen), 2, figsize=(10, height * len(chosen)), width_ratios=[1, 5], squeeze=False
    )
    first = examples[0][1]
    for (image_ax, text_ax), image_id in zip(axes, chosen):
        with Image.open(paths[image_id]) as image:
            image_ax.imshow(image.convert("RGBA"))
        image_ax.set_axis_off()
        text_ax.set_axis_off()
        references = sorted(first.loc[first["image_id"] == image_id, "reference"])
        lines = [f"{image_id}", _wrapped("reference", " | ".join(references))]
        for label, frame in examples:
            generated = frame.loc[frame["image_id"] == image_id, "generated"].iloc[0]
            lines.append(_wrapped(label, generated or "(empty)"))
        text_ax.text(0.0, 0.5, "\n".join(lines), transform=text_ax.transAxes, va="center", ha="left", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _wrapped(label: str, text: str) -> str:
    return textwrap.fill(f"{label}: {text}", width=110, subsequent_indent="    ")
