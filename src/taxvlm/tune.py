"""Choose training length and learning rate on the validation split, from the trained task only.

The honest-science rule of the project: nothing about training is chosen by looking at held-out
hypernym results. The tuning runs train on the `tuning.condition` (default `full`: leaf questions or
leaf captions only, so not even a seen hypernym enters) and are judged on `val_leaf.tsv`, leaves on
validation images, under the objective's own readout (`taxvlm.training.validation`: the yes/no questions' absolute
rule, or leaf naming by calibrated likelihood for captions). Each candidate (a learning rate and a
feature normalisation) trains for `tuning.epochs` and scores the validation table after every epoch
(`val_curve.tsv`), for every target (encoder × objective × init) of `tuning`: the random-init twin is
tuned as carefully as the pretrained LM, so a gap between them is not a gap in tuning.

Selection (**decision**), per target: the candidate with the highest validation accuracy at any epoch
wins (ties: the smaller learning rate); its training length is the first epoch whose validation
accuracy is within `tolerance` of that best value, so the default trains no longer than it needs to.
Where an objective × init was tuned with several encoders, the encoder whose best validation accuracy
is highest is chosen (ties: the first listed), so the encoder too is chosen on the trained task alone.
The choice is read off a curve of a longer cosine schedule; every default run writes its own
`val_curve.tsv`, which shows whether the chosen length also learns the task on its own schedule. The
chosen encoder's settings are written as `training.overrides` items, ready for the config.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import yaml

from taxvlm.io import read_tsv, write_text, write_tsv

PathLike = str | os.PathLike[str]
CANDIDATE_KEYS: tuple[str, ...] = ("lr", "feature_norm")
TARGET_KEYS: tuple[str, ...] = ("encoder", "objective", "init")
READOUTS = {
    "yesno": "accuracy (absolute rule) on the validation leaf questions",
    "caption": "leaf naming accuracy (paired calibrated rule) on the validation leaves",
}


def candidate_name(candidate: Mapping[str, Any]) -> str:
    """A path-safe, stable name: `lr0.01_standardize`."""
    return f"lr{float(candidate['lr']):g}_{candidate['feature_norm']}"


def tuning_plan(
    targets: Sequence[Mapping[str, Any]], candidates: Sequence[Mapping[str, Any]]
) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(target, candidate) for every tuning run, in order: each target with its own `candidates` where
    it lists them (a grid extended for one target only), else the shared ones."""
    return [
        ({key: target[key] for key in TARGET_KEYS}, dict(candidate))
        for target in targets
        for candidate in target.get("candidates", candidates)
    ]


def tuning_table(plan: Sequence[tuple[Mapping[str, str], Mapping[str, Any]]], curves: Sequence[PathLike]) -> pd.DataFrame:
    """One row per target (encoder, objective, init) × candidate × validation point; `curves` are in
    the order of the plan (`tuning_plan`)."""
    frames = []
    for (target, candidate), path in zip(plan, curves, strict=True):
        curve = read_tsv(path).astype(float)
        keys = {key: target[key] for key in TARGET_KEYS} | {key: candidate[key] for key in CANDIDATE_KEYS}
        frames.append(curve.assign(**keys))
    table = pd.concat(frames, ignore_index=True)
    return table[[*TARGET_KEYS, *CANDIDATE_KEYS, "epoch", "step", "n", "accuracy", "pair_accuracy", "yes_rate"]]


def choose(table: pd.DataFrame, tolerance: float) -> dict[str, Any]:
    """The selection of the module docstring for one target's curves: the best candidate and the
    shortest training within `tolerance` of its best validation accuracy (rounded up to whole epochs)."""
    best = table.groupby(list(CANDIDATE_KEYS), sort=False)["accuracy"].max().reset_index()
    best = best.sort_values(["accuracy", "lr"], ascending=[False, True], kind="stable")
    winner = best.iloc[0]
    curve = table[(table["lr"] == winner["lr"]) & (table["feature_norm"] == winner["feature_norm"])]
    good_enough = curve[curve["accuracy"] >= winner["accuracy"] - tolerance]
    first = good_enough.sort_values("epoch").iloc[0]
    return {
        "lr": float(winner["lr"]),
        "feature_norm": str(winner["feature_norm"]),
        "epochs": max(1, math.ceil(float(first["epoch"]) - 1e-9)),
        "best_val_accuracy": float(winner["accuracy"]),
        "chosen_val_accuracy": float(first["accuracy"]),
    }


def choices(table: pd.DataFrame, tolerance: float) -> list[dict[str, Any]]:
    """`choose` for every target of the table, in its order, each marked `chosen_encoder` when its
    encoder has the best validation accuracy of its objective × init (module docstring)."""
    chosen = [
        dict(zip(TARGET_KEYS, target)) | choose(curves, tolerance)
        for target, curves in table.groupby(list(TARGET_KEYS), sort=False)
    ]
    for objective, init in dict.fromkeys((c["objective"], c["init"]) for c in chosen):
        rivals = [c for c in chosen if (c["objective"], c["init"]) == (objective, init)]
        best = max(rivals, key=lambda c: c["best_val_accuracy"])  # the first listed of equals
        for choice in rivals:
            choice["chosen_encoder"] = choice is best
    return chosen


def overrides(chosen: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The chosen encoder's choices as `training.overrides` items (what the config takes)."""
    keys = ("objective", "init", "lr", "feature_norm", "epochs")
    return [{key: choice[key] for key in keys} for choice in chosen if choice["chosen_encoder"]]


def tuning_markdown(table: pd.DataFrame, chosen: Sequence[Mapping[str, Any]], setup: Mapping[str, Any]) -> str:
    """The tuning report: the setup, every target's validation curves, the encoder choice where
    there was one, the choices as config."""
    lines = [
        "# Training length, learning rate and encoder, chosen on the validation split",
        "",
        "Generated by `snakemake tune` (`taxvlm.tune`); do not edit by hand.",
        "",
        f"Setup: LM `{setup['lm']}`, condition `{setup['condition']}` (no hypernym in training), seed"
        f" {setup['seed']}, {setup['epochs']:g} epochs per candidate; every other training setting as in the"
        " config. Selection: the best validation accuracy at any epoch, then the first epoch within"
        f" {setup['tolerance']:g} of it; per objective and init, the encoder with the best validation accuracy.",
        "",
    ]
    for choice in chosen:
        rows = table[(table[list(TARGET_KEYS)] == pd.Series({k: choice[k] for k in TARGET_KEYS})).all(axis=1)]
        wide = rows.pivot_table(index="epoch", columns=list(CANDIDATE_KEYS), values="accuracy").round(3)
        wide.columns = [candidate_name(dict(zip(CANDIDATE_KEYS, key))) for key in wide.columns]
        wide.index = [f"{epoch:g}" for epoch in wide.index]
        lines += [
            f"## {choice['objective']}, {choice['init']} LM, encoder `{choice['encoder']}`",
            "",
            f"Score: {READOUTS[choice['objective']]} ({int(rows['n'].iloc[0])} rows), by epoch (rows) and"
            " candidate (columns):",
            "",
            wide.to_markdown(),
            "",
            f"Chosen: lr {choice['lr']:g}, feature_norm `{choice['feature_norm']}`, {choice['epochs']} epochs"
            f" (validation accuracy {choice['chosen_val_accuracy']:.3f}; best of this candidate"
            f" {choice['best_val_accuracy']:.3f}).",
            "",
        ]
    contested = [c for c in chosen if sum(
        (o["objective"], o["init"]) == (c["objective"], c["init"]) for o in chosen) > 1]  # fmt: skip
    if contested:
        lines += ["## Encoder", "", "Best validation accuracy per objective, init and encoder:", ""]
        lines += ["| objective | init | encoder | best validation accuracy | chosen |", "|---|---|---|---:|---|"]
        lines += [
            f"| {c['objective']} | {c['init']} | `{c['encoder']}` | {c['best_val_accuracy']:.3f} |"
            f" {'yes' if c['chosen_encoder'] else ''} |"
            for c in contested
        ]
        lines += [""]
    lines += [
        "## As config",
        "",
        "```yaml",
        yaml.safe_dump({"training": {"overrides": overrides(chosen)}}, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_tuning(
    plan: Sequence[tuple[Mapping[str, str], Mapping[str, Any]]],
    curves: Sequence[PathLike],
    setup: Mapping[str, Any],
    table_path: PathLike,
    markdown_path: PathLike,
) -> list[dict[str, Any]]:
    """Write the tidy tuning table and its Markdown report; return the choices."""
    table = tuning_table(plan, curves)
    chosen = choices(table, float(setup["tolerance"]))
    write_tsv(table, table_path)
    write_text(tuning_markdown(table, chosen, setup), markdown_path)
    return chosen
