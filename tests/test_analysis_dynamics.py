"""Readouts along training (taxvlm.analysis.dynamics) on planted predictions: the last point is the
final evaluation, points are never picked by a held-out score, and the twin comparison reads CIs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taxvlm.analysis.dynamics import (
    NO_YESNO_RUNS,
    best_leaf_step,
    collect_dynamics,
    read_dynamics,
)
from taxvlm.analysis.metrics import collect_metrics, headline, read_typed
from taxvlm.evaluation.decision import decide
from taxvlm.evaluation.readouts import BY_STEP_COLUMNS
from taxvlm.io import read_tsv, write_tsv

HYPERNYMS = {"animal": ["cat", "dog", "owl"], "tool": ["saw", "axe", "pen"], "food": ["fig", "pea", "yam"]}
STEPS = [10, 20, 30]


def _predictions(seed: int, skill: dict[str, float]) -> pd.DataFrame:
    """Yes/no rows of leaf and held-out questions on 3 images per leaf; `skill[test_set]` shifts the
    margin towards the right answer (0: noise only)."""
    gen = np.random.default_rng(seed)
    leaves = [(h, leaf) for h, members in HYPERNYMS.items() for leaf in members]
    rows = []
    for h, leaf in leaves:
        foil_h = next(other for other in HYPERNYMS if other != h)
        foil_leaf = next(x for _, x in leaves if x != leaf)
        for view in range(3):
            image = f"{leaf}/{leaf}_{view}"
            for test_set, kind, asked, foil in [("leaf", "leaf", leaf, foil_leaf), ("unseen", "hypernym", h, foil_h)]:
                for answer, name in (("Yes", asked), ("No", foil)):
                    sign = 1 if answer == "Yes" else -1
                    rows.append({
                        "test_set": test_set, "row_id": f"{image}|{kind}:{name}", "question_id": f"{leaf}:{kind}:{asked}:{answer}",
                        "pair": f"{leaf}:{kind}:{asked}", "image_id": image, "leaf": leaf, "kind": kind, "asked": name,
                        "answer": answer, "logp_yes": 0.0, "logp_no": 0.0,
                        "margin": sign * skill[test_set] + gen.normal(), "margin_noimage": 0.0,
                    })
    return decide(pd.DataFrame(rows))


def _runs(root: Path, held_out_skill_at: dict[int, float]) -> list[dict]:
    """Two seeds per init; the pretrained runs' held-out skill per step from `held_out_skill_at`,
    the twin's 0; leaf skill grows with the step for both."""
    runs = []
    for init in ("pretrained", "random"):
        for seed in (1, 2):
            folder = root / init / str(seed)
            folder.mkdir(parents=True)
            frames = []
            for step in STEPS:
                skill = {"leaf": step / 10, "unseen": held_out_skill_at[step] if init == "pretrained" else 0.0}
                frames.append(_predictions(seed * 100 + step, skill).assign(step=step, epoch=step / 10))
            by_step = pd.concat(frames, ignore_index=True)[BY_STEP_COLUMNS]
            write_tsv(by_step, folder / "predictions_by_step.tsv")
            write_tsv(by_step[by_step["step"] == STEPS[-1]].drop(columns=["step", "epoch"]), folder / "predictions.tsv")
            curve = pd.DataFrame({"step": [0, *STEPS], "accuracy": [0.5, 0.6, 0.9, 0.8]})  # best leaf: step 20
            write_tsv(curve, folder / "val_curve.tsv")
            runs.append({
                "encoder": "enc", "lm": "lm", "init": init, "condition": "full", "shuffle": "original",
                "objective": "yesno", "seed": seed, "path": folder / "predictions_by_step.tsv",
                "val_curve": folder / "val_curve.tsv", "train": root / "train.tsv",
            })
    return runs


@pytest.fixture()
def planted(tmp_path: Path) -> tuple[list[dict], dict[str, Path], pd.DataFrame]:
    pairs = pd.DataFrame([(leaf, h) for h, members in HYPERNYMS.items() for leaf in members], columns=["concept", "hypernym"])
    write_tsv(pd.DataFrame({"kind": ["leaf"] * 3, "answer": ["No"] * 3, "asked": ["cat", "dog", "saw"]}), tmp_path / "train.tsv")
    runs = _runs(tmp_path, {10: 4.0, 20: 0.0, 30: 0.0})  # transfer only early, none at the end
    outputs = {name: tmp_path / f"{name}.tsv" for name in ("dynamics", "categories", "correlations", "twin", "statement")}
    return runs, outputs, pairs


def test_the_last_point_is_the_final_evaluation(planted) -> None:
    runs, outputs, pairs = planted
    dynamics = collect_dynamics(runs, 3, pairs, None, outputs)
    final_runs = [run | {"readout": "yesno", "path": Path(run["path"]).parent / "predictions.tsv"} for run in runs]
    final = headline(collect_metrics(final_runs, outputs["dynamics"].parent / "metrics.tsv", n_categories=3))
    last = dynamics[dynamics["step"] == STEPS[-1]].drop(columns=["step", "epoch"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(last, final.reset_index(drop=True), check_dtype=False)
    assert sorted(read_dynamics(outputs["dynamics"])["step"].unique()) == STEPS


def test_points_are_compared_with_the_twin_and_never_picked_by_a_held_out_score(planted) -> None:
    runs, outputs, pairs = planted
    dynamics = collect_dynamics(runs, 3, pairs, None, outputs)
    comparison = read_typed(outputs["twin"], ("step", "baseline", "difference")).astype({"step": int})
    comparison = comparison.set_index(["rule", "step"])
    assert comparison.loc[("paired_calibrated", 10), "verdict"] == "above"  # planted early transfer
    assert comparison.loc[("paired_calibrated", 30), "verdict"] == "no difference"
    assert comparison.loc[("paired_calibrated", 10), "n_categories"] == "3"  # the category is the unit
    statement = outputs["statement"].read_text()
    assert (
        "rule paired_calibrated (pair_accuracy): above the twin at step(s) 10; "
        "the pretrained LM is above chance (0.5) at step(s) 10"
    ) in statement
    held_out = dynamics.query("test_set == 'unseen' and rule == 'absolute' and step == 10 and init == 'pretrained'")
    assert comparison.loc[("absolute", 10), "baseline"] == pytest.approx(held_out["majority_macro_f1"].item())
    # the best-leaf point comes from the validation curves only: step 20, where held-out transfer is nil
    view = read_typed(outputs["categories"], ("step", "n_negative_leaf_rows"))
    assert set(zip(view["point"], view["step"].astype(int))) == {("last", 30), ("best_leaf", 20)}
    assert best_leaf_step(pd.DataFrame({"step": [10, 20, 30], "accuracy": [0.9, 0.9, 0.1]}), STEPS) == 10
    negatives = view.drop_duplicates("category").set_index("category")["n_negative_leaf_rows"]
    assert negatives.to_dict() == {"animal": 2, "tool": 1, "food": 0}  # cat, dog; saw; none
    assert set(read_tsv(outputs["correlations"])["covariate"]) == {"coherence", "n_negative_leaf_rows"}


def test_a_grid_without_yesno_runs_gives_empty_tables_and_says_why(tmp_path: Path) -> None:
    """A caption-only grid (config/limber_default.yaml) keeps no yes/no points: every output is written,
    with its header, and the statement names the reason instead of a KeyError."""
    outputs = {name: tmp_path / f"{name}.tsv" for name in ("dynamics", "categories", "correlations", "twin", "statement")}
    pairs = pd.DataFrame({"concept": ["cat"], "hypernym": ["animal"]})
    dynamics = collect_dynamics([], 1, pairs, None, outputs)
    assert dynamics.empty
    assert {"test_set", "step", "rule"} <= set(read_dynamics(outputs["dynamics"]).columns)
    assert read_tsv(outputs["categories"]).empty and read_tsv(outputs["correlations"]).empty
    assert outputs["statement"].read_text() == f"{NO_YESNO_RUNS}\n"


def test_one_kept_point_is_the_final_evaluation_alone(planted) -> None:
    """`training.eval_every: 0` keeps only the end: one step per run, compared with the twin there."""
    runs, outputs, pairs = planted
    for run in runs:
        by_step = read_tsv(run["path"])
        write_tsv(by_step[by_step["step"] == str(STEPS[-1])], run["path"])
    dynamics = collect_dynamics(runs, 3, pairs, None, outputs)
    assert set(dynamics["step"]) == {STEPS[-1]}
    assert set(read_typed(outputs["categories"], ("step",))["step"]) == {STEPS[-1]}
    assert f"(steps {STEPS[-1]})" in outputs["statement"].read_text()
