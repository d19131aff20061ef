"""Linear probes on the cached hidden states of every LM layer (taxvlm.probing.states).

Every probe is scikit-learn's `StandardScaler` + `LogisticRegression` (lbfgs), its C chosen from
`Cs` by inner cross-validation on the training split (`LogisticRegressionCV`, warm-started along
the C path; inner folds grouped like the outer split). Fit on the run's training images, scored on
its test images. Tasks (`problems`), and what each generalises across:

| task | position | unit | label | generalises across |
|---|---|---|---|---|
| `entailment` | answer, target | question row | its Yes/No answer | images (same concepts) |
| `transfer` | answer, target | question row | Yes/No of hypernym questions: fit on the seen pairs' training rows, test on test_unseen | (leaf, hypernym) pairs the LM never answered |
| `leaf` | image | image | the leaf its questions are about | images (same concepts) |
| `membership` | image | image, per hypernym | leaf ∈ hypernym | concepts: outer folds over concepts (StratifiedGroupKFold), fit on the training images of the other folds' concepts |
| `transfer` | image | image, per hypernym | leaf ∈ hypernym | concepts: fit on the hypernym's seen members (+) and half the non-members (−), test on its held-out members and the other half |

`seen` / `held-out` are the run's own deprivation split (test_seen / test_unseen pairs), so the
transfer probe exists only where a condition keeps some and removes some of a hypernym's pairs
(e.g. `random50`; under `full` nothing is seen, under `none` nothing is held out: skipped and listed).
Per-hypernym scores are averaged over hypernyms. A problem whose training split has one class is
skipped and listed (`skipped`), never fitted.

Control task (Hewitt & Liang selectivity), with the probe's chosen C: row tasks use the labels
permuted within each image concept (keeps each concept's Yes rate, breaks the image–question
match); image tasks, whose labels are constant within a concept (a within-concept permutation is
the identity), give each concept a label drawn from the task's label distribution over concepts,
so a probe can only memorise concepts. `selectivity` = accuracy − control accuracy.

Row tasks also score the LM itself on the same test rows (`lm_accuracy`, absolute rule: margin > 0
is Yes) and the probe on the rows the LM answered wrongly (`accuracy_lm_wrong`): whether the answer
is linearly present inside the LM where its output misses it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import f1_score, log_loss
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.preprocessing import StandardScaler

from taxvlm.data.errors import DataError
from taxvlm.io import read_json, read_tsv, write_tsv
from taxvlm.seeding import rng

log = logging.getLogger(__name__)

RUN_KEYS = ["encoder", "lm", "init", "condition", "shuffle", "objective", "seed"]
TASK_POSITIONS = {
    "entailment": ("answer", "target"),
    "transfer": ("answer", "target", "image"),
    "leaf": ("image",),
    "membership": ("image",),
}
TOL = 1e-3  # lbfgs gradient tolerance, looser than the default 1e-4: fewer iterations on separable n < d fits
SCORES = [
    "accuracy",
    "macro_f1",
    "control_accuracy",
    "selectivity",
    "majority",
    "chance",
    "lm_accuracy",
    "accuracy_lm_wrong",
]


@dataclass
class Problem:
    """One probe fit: indices into the position's rows, labels, inner-CV groups, control labels."""

    task: str
    position: str
    unit: str  # the hypernym of a per-hypernym task, else "all"
    train: np.ndarray
    test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    groups: np.ndarray  # inner-CV groups of the training rows
    control_train: np.ndarray
    control_test: np.ndarray
    lm_correct: np.ndarray | None = None  # row tasks: whether the LM's own answer (margin > 0 = Yes) is right
    validate: np.ndarray | None = None  # `membership`: the fold's own training images, which choose C
    y_validate: np.ndarray | None = None


def check_disjoint(task: str, unit: str, train_concepts: np.ndarray, test_concepts: np.ndarray) -> None:
    """A task that generalises across concepts must never see a test concept in training."""
    leak = sorted(set(train_concepts) & set(test_concepts))
    if leak:
        raise DataError(f"probe {task}/{unit}: concepts {leak[:5]} sit on both sides of the split")


def permute_within(labels: np.ndarray, groups: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """The labels shuffled among the rows of each group (the row tasks' control)."""
    out = labels.copy()
    for g in np.unique(groups):
        where = np.flatnonzero(groups == g)
        out[where] = labels[gen.permutation(where)]
    return out


def concept_control(labels: pd.Series, concepts: pd.Series, gen: np.random.Generator) -> dict[str, Any]:
    """Each concept's control label, drawn from the task's label distribution over concepts."""
    per_concept = labels.groupby(concepts.to_numpy()).first().sort_index()
    drawn = gen.choice(per_concept.to_numpy(), size=len(per_concept), replace=True)
    return dict(zip(per_concept.index, drawn))


def _row_problem(
    task: str, position: str, rows: pd.DataFrame, train: np.ndarray, test: np.ndarray, seed: int
) -> Problem:
    y, concept = rows["answer"].to_numpy(), rows["image_concept"].to_numpy()
    gen = rng(seed, "probe-control", task, position)
    lm_correct = None
    if "margin" in rows:
        lm_correct = (np.where(rows["margin"].astype(float).to_numpy() > 0, "Yes", "No") == y)[test]
    problem = Problem(
        task,
        position,
        "all",
        train,
        test,
        y[train],
        y[test],
        rows["image_id"].to_numpy()[train],
        permute_within(y[train], concept[train], gen),
        permute_within(y[test], concept[test], gen),
    )
    problem.lm_correct = lm_correct
    return problem


def row_problems(rows: pd.DataFrame, positions: list[str], seed: int) -> list[Problem]:
    """`entailment` and the row `transfer` problems at the question positions."""
    train, test = rows["split"].eq("train"), rows["split"].eq("test")
    hyper_train = np.flatnonzero(train & rows["kind"].eq("hypernym"))
    unseen = np.flatnonzero(rows["test_set"].eq("unseen"))
    out = []
    for position in [p for p in positions if p in ("answer", "target")]:
        out.append(_row_problem("entailment", position, rows, np.flatnonzero(train), np.flatnonzero(test), seed))
        out.append(_row_problem("transfer", position, rows, hyper_train, unseen, seed))
    return out


def _image_problem(
    task: str, unit: str, images: pd.DataFrame, labels: pd.Series, train: np.ndarray, test: np.ndarray, seed: int
) -> Problem:
    leaf = images["leaf"]
    control = leaf.map(concept_control(labels, leaf, rng(seed, "probe-control", task, unit))).to_numpy()
    y = labels.to_numpy()
    return Problem(
        task, "image", unit, train, test, y[train], y[test], leaf.to_numpy()[train], control[train], control[test]
    )


def membership_problems(
    images: pd.DataFrame, members: dict[str, set[str]], folds: int, seed: int
) -> Iterator[Problem | tuple[str, str, str]]:
    """Per hypernym, one problem per outer fold of concepts (stratified by membership); yields
    (task, unit, reason) for a hypernym that cannot be split."""
    leaf, is_train = images["leaf"], images["split"].eq("train").to_numpy()
    concepts = np.array(sorted(leaf.unique()))
    for hypernym, member in sorted(members.items()):
        inside = np.isin(concepts, sorted(member))
        k = min(folds, int(inside.sum()), int((~inside).sum()))
        if k < 2:
            yield (
                "membership",
                hypernym,
                f"{int(inside.sum())} member / {int((~inside).sum())} other concepts: no grouped split",
            )
            continue
        labels = leaf.isin(member)
        order = rng(seed, "probe-folds", hypernym).permutation(len(concepts))
        fold_of = dict(zip(concepts[order], _stratified_folds(inside[order], k)))
        fold = leaf.map(fold_of).to_numpy()
        for f in range(k):
            train, test = np.flatnonzero(is_train & (fold != f)), np.flatnonzero(~is_train & (fold == f))
            check_disjoint("membership", hypernym, leaf.to_numpy()[train], leaf.to_numpy()[test])
            problem = _image_problem("membership", hypernym, images, labels, train, test, seed)
            problem.validate = np.flatnonzero(is_train & (fold == f))
            problem.y_validate = labels.to_numpy()[problem.validate]
            yield problem


def _stratified_folds(inside: np.ndarray, k: int) -> np.ndarray:
    """Fold numbers dealt round-robin within members and within the others (both in every fold)."""
    folds = np.empty(len(inside), dtype=int)
    for mask in (inside, ~inside):
        folds[mask] = np.arange(int(mask.sum())) % k
    return folds


def transfer_problems(
    images: pd.DataFrame,
    members: dict[str, set[str]],
    seen: set[tuple[str, str]],
    held_out: set[tuple[str, str]],
    seed: int,
) -> Iterator[Problem | tuple[str, str, str]]:
    """Per hypernym with seen and held-out members: fit on the seen members' and half the
    non-members' training images, test on the held-out members' and the other half's test images."""
    leaf, is_train = images["leaf"], images["split"].eq("train").to_numpy()
    concepts = np.array(sorted(leaf.unique()))
    for hypernym, member in sorted(members.items()):
        fit = {s for s, h in seen if h == hypernym}
        held = {s for s, h in held_out if h == hypernym}
        if not fit or not held:
            yield ("transfer", hypernym, f"{len(fit)} seen / {len(held)} held-out members under this condition")
            continue
        others = concepts[~np.isin(concepts, sorted(member))]
        others = others[rng(seed, "probe-transfer", hypernym).permutation(len(others))]
        half = len(others) // 2
        train = np.flatnonzero(is_train & leaf.isin(fit | set(others[:half])).to_numpy())
        test = np.flatnonzero(~is_train & leaf.isin(held | set(others[half:])).to_numpy())
        check_disjoint("transfer", hypernym, leaf.to_numpy()[train], leaf.to_numpy()[test])
        yield _image_problem("transfer", hypernym, images, leaf.isin(member), train, test, seed)


def image_problems(
    images: pd.DataFrame, rows: pd.DataFrame, pairs: pd.DataFrame, tasks: list[str], folds: int, seed: int
) -> Iterator[Problem | tuple[str, str, str]]:
    """`leaf`, `membership` and image `transfer` problems (or skip records) of one run."""
    members = {h: set(g["concept"]) for h, g in pairs.groupby("hypernym")}
    positive = rows[rows["kind"].eq("hypernym") & rows["answer"].eq("Yes")]
    pairs_of = {name: set(zip(t["leaf"], t["asked"])) for name, t in positive.groupby("test_set")}
    is_train = images["split"].eq("train").to_numpy()
    if "leaf" in tasks:
        yield _image_problem(
            "leaf", "all", images, images["leaf"], np.flatnonzero(is_train), np.flatnonzero(~is_train), seed
        )
    if "membership" in tasks:
        yield from membership_problems(images, members, folds, seed)
    if "transfer" in tasks:
        yield from transfer_problems(images, members, pairs_of.get("seen", set()), pairs_of.get("unseen", set()), seed)


def run_problems(
    cache: Path, pairs: pd.DataFrame, settings: dict[str, Any]
) -> tuple[list[Problem], list[tuple[str, str, str, str]]]:
    """Every problem of one run's cache, and the skipped ones as (task, position, unit, reason)."""
    rows, images = read_tsv(cache / "rows.tsv"), read_tsv(cache / "images.tsv")
    positions, tasks, seed = settings["positions"], settings["tasks"], settings["seed"]
    found: list[Problem | tuple[str, str, str]] = [p for p in row_problems(rows, positions, seed) if p.task in tasks]
    if "image" in positions:
        found += list(image_problems(images, rows, pairs, tasks, settings["folds"], seed))
    problems, skipped = [], []
    for p in found:
        if isinstance(p, tuple):
            skipped.append((p[0], "image", p[1], p[2]))
        elif len(set(p.y_train)) < 2 or not len(p.test):
            reason = (
                "no training rows (no seen pair under this condition)"
                if not len(p.train)
                else "no test rows" if not len(p.test) else f"{len(set(p.y_train))} class in the training split"
            )
            skipped.append((p.task, p.position, p.unit, reason))
        else:
            problems.append(p)
    return problems, skipped


def inner_splits(y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped, stratified inner folds whose training part holds every class (none when the
    rarest class spans fewer than two groups)."""
    per_class = pd.Series(groups).groupby(y).nunique()
    k = min(folds, int(per_class.min()))
    if k < 2:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed % 2**32)
        splits = list(cv.split(np.zeros(len(y)), y, groups))
    n_classes = len(per_class)
    return [(tr, va) for tr, va in splits if len(np.unique(y[tr])) == n_classes]


def _fit(
    x: np.ndarray, y: np.ndarray, c: float, settings: dict[str, Any], warm: LogisticRegression | None = None
) -> LogisticRegression:
    model = warm if warm is not None else LogisticRegression(max_iter=settings["max_iter"], tol=TOL, warm_start=True)
    return model.set_params(C=c).fit(x, y)


def _control(xtr: np.ndarray, xte: np.ndarray, problem: Problem, c: float, settings: dict[str, Any]) -> np.ndarray:
    """The control task's test predictions with the probe's C (constant when its labels are)."""
    if len(set(problem.control_train)) < 2:
        return np.full(len(xte), problem.control_train[0], dtype=object)
    return _fit(xtr, problem.control_train, c, settings).predict(xte)


def fit_predict(
    x_train: np.ndarray, x_test: np.ndarray, problem: Problem, settings: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Standardise, choose C by inner CV, predict the test rows; the control task with that C."""
    scaler = StandardScaler().fit(x_train)
    xtr, xte = scaler.transform(x_train), scaler.transform(x_test)
    splits = inner_splits(problem.y_train, problem.groups, settings["folds"], settings["seed"])
    cs = sorted(float(c) for c in settings["Cs"])
    if splits:
        model = LogisticRegressionCV(
            Cs=cs,
            cv=splits,
            max_iter=settings["max_iter"],
            tol=TOL,
            scoring="neg_log_loss",
            l1_ratios=(0,),
            use_legacy_attributes=False,
        ).fit(xtr, problem.y_train)
        c = float(model.C_)
    else:
        c = cs[len(cs) // 2]
        model = _fit(xtr, problem.y_train, c, settings)
    return model.predict(xte), _control(xtr, xte, problem, c, settings), c


def fit_folds(
    x: np.ndarray, folds: list[Problem], settings: dict[str, Any]
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Outer folds that also choose C (`membership`): fold f's models, fit along the C path (warm
    starts) on the other folds' concepts, are validated on fold f's own training images; the C with
    the lowest log loss summed over folds gives every fold's test predictions (test images unused)."""
    cs = sorted(float(c) for c in settings["Cs"])
    loss, preds, scaled = np.zeros(len(cs)), [], []
    for problem in folds:
        scaler = StandardScaler().fit(x[problem.train])
        xtr, xva, xte = (scaler.transform(x[i]) for i in (problem.train, problem.validate, problem.test))
        model, fold_preds = None, []
        for j, c in enumerate(cs):
            model = _fit(xtr, problem.y_train, c, settings, model)
            if len(xva):
                loss[j] += log_loss(problem.y_validate, model.predict_proba(xva), labels=model.classes_) * len(xva)
            fold_preds.append(model.predict(xte))
        preds.append(fold_preds)
        scaled.append((xtr, xte))
    best = int(np.argmin(loss))
    return [
        (p[best], _control(xtr, xte, problem, cs[best], settings), cs[best])
        for p, (xtr, xte), problem in zip(preds, scaled, folds)
    ]


def _scores(parts: list[tuple[Problem, np.ndarray, np.ndarray]]) -> dict[str, float]:
    """The unit's scores over its problems' test rows (outer folds concatenated)."""
    y = np.concatenate([p.y_test for p, _, _ in parts]).astype(str)
    pred = np.concatenate([pr for _, pr, _ in parts]).astype(str)
    control = np.concatenate([c for _, _, c in parts]).astype(str)
    control_y = np.concatenate([p.control_test for p, _, _ in parts]).astype(str)
    majority = np.concatenate(
        [np.full(len(p.y_test), pd.Series(p.y_train).mode().iloc[0]) for p, _, _ in parts]
    ).astype(str)
    labels = np.unique(np.concatenate([y] + [p.y_train.astype(str) for p, _, _ in parts]))
    accuracy = float((pred == y).mean())
    control_accuracy = float((control == control_y).mean())
    lm_correct = [p.lm_correct for p, _, _ in parts]
    lm = np.concatenate(lm_correct) if all(c is not None for c in lm_correct) else np.zeros(0, dtype=bool)
    return {
        "accuracy": accuracy,
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "control_accuracy": control_accuracy,
        "selectivity": accuracy - control_accuracy,
        "majority": float((majority == y).mean()),
        "chance": 1.0 / len(labels),
        "lm_accuracy": float(lm.mean()) if len(lm) else np.nan,
        "accuracy_lm_wrong": float((pred == y)[~lm].mean()) if len(lm) and (~lm).any() else np.nan,
    }


def probe_layer(cache: Path, layer: int, problems: list[Problem], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Fit every problem of a run at one layer; one record per (task, position, unit)."""
    from threadpoolctl import threadpool_limits

    states = {p: np.load(cache / f"{p}.npy", mmap_mode="r") for p in {q.position for q in problems}}
    x = {p: np.asarray(s[layer], dtype=np.float32) for p, s in states.items()}
    by_unit: dict[tuple[str, str, str], list[Problem]] = {}
    for problem in problems:
        by_unit.setdefault((problem.task, problem.position, problem.unit), []).append(problem)
    units: dict[tuple[str, str, str], list] = {}
    cs: dict[tuple[str, str, str], list[float]] = {}
    with threadpool_limits(1), warnings.catch_warnings():  # many small fits: BLAS threads only contend
        warnings.simplefilter("ignore", ConvergenceWarning)
        for key, group in by_unit.items():
            xs = x[key[1]]
            if group[0].validate is not None:
                fitted = fit_folds(xs, group, settings)
            else:
                fitted = [fit_predict(xs[p.train], xs[p.test], p, settings) for p in group]
            units[key] = [(p, pred, control) for p, (pred, control, _) in zip(group, fitted)]
            cs[key] = [c for _, _, c in fitted]
    return [
        {
            "layer": layer,
            "task": t,
            "position": p,
            "unit": u,
            **_scores(parts),
            "C": float(np.median(cs[(t, p, u)])),
            "n_train": sum(len(q.train) for q, _, _ in parts),
            "n_test": sum(len(q.test) for q, _, _ in parts),
        }
        for (t, p, u), parts in units.items()
    ]


def fit_runs(
    caches: list[tuple[dict[str, Any], Path]], pairs: pd.DataFrame, settings: dict[str, Any], threads: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-run scores: one row per run × layer × position × task, averaged over units; skipped
    problems) of every cached run; the (run, layer) fits run in `threads` processes."""
    from joblib import Parallel, delayed

    jobs, skipped = [], []
    for keys, cache in caches:
        problems, skips = run_problems(cache, pairs, settings)
        skipped += [{**keys, "task": t, "position": p, "unit": u, "reason": r} for t, p, u, r in skips]
        n_layers = int(read_json(cache / "meta.json")["layers"])
        jobs += [(keys, n_layers, cache, layer, problems) for layer in range(n_layers + 1) if problems]
    results = Parallel(n_jobs=threads)(delayed(probe_layer)(c, layer, pr, settings) for _, _, c, layer, pr in jobs)
    records = [
        {**keys, "n_layers": n_layers, "depth": rec["layer"] / n_layers, **rec}
        for (keys, n_layers, *_), recs in zip(jobs, results)
        for rec in recs
    ]
    units = pd.DataFrame(records)
    skipped = pd.DataFrame(skipped, columns=[*RUN_KEYS, "task", "position", "unit", "reason"])
    if units.empty:
        raise DataError("probe: every probe task was skipped (see the skipped list); nothing to report")
    keys = [*RUN_KEYS, "n_layers", "layer", "depth", "position", "task"]
    per_run = units.groupby(keys, sort=True).agg(
        **{s: (s, "mean") for s in SCORES}, C=("C", "median"), n_units=("unit", "size"), n_test=("n_test", "sum")
    )
    return per_run.reset_index(), skipped.sort_values([*RUN_KEYS, "task", "unit"]).reset_index(drop=True)


def seed_summary(per_run: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds with t-based 95% CIs (NaN with one seed): probe.tsv."""
    from scipy import stats

    keys = [k for k in RUN_KEYS if k != "seed"] + ["n_layers", "layer", "depth", "position", "task"]
    rows = []
    for key, group in per_run.groupby(keys, sort=True):
        row = dict(zip(keys, key)) | {"n_seeds": len(group)}
        for score in SCORES:
            values = group[score].to_numpy(dtype=float)
            half = (
                stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
                if len(values) > 1
                else np.nan
            )
            row |= {score: values.mean()} | (
                {f"{score}_ci_low": values.mean() - half, f"{score}_ci_high": values.mean() + half}
                if score in ("accuracy", "macro_f1", "selectivity")
                else {}
            )
        rows.append(row)
    return pd.DataFrame(rows)


def probe_stage(
    caches: list[tuple[dict[str, Any], Path]],
    pairs: Path,
    settings: dict[str, Any],
    out: dict[str, Path],
    threads: int = 1,
) -> None:
    """The probe stage's fit/collect job: `out` keys `runs` (per-seed scores), `summary` (probe.tsv),
    `skipped`, `figure`, `table_csv`, `table_md`, `statement`."""
    from taxvlm.analysis.probe_report import write_report

    per_run, skipped = fit_runs(caches, read_tsv(pairs), settings, threads)
    for (task, position, unit), group in skipped.groupby(["task", "position", "unit"]):
        log.warning(
            "probe %s @ %s (%s) skipped in %d run(s): %s", task, position, unit, len(group), group["reason"].iloc[0]
        )
    summary = seed_summary(per_run)
    write_tsv(per_run, out["runs"])
    write_tsv(summary, out["summary"])
    write_tsv(skipped, out["skipped"])
    write_report(summary, out["figure"], out["table_csv"], out["table_md"], out["statement"])
