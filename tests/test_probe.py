"""Layer-wise probing: state capture on a tiny LM, probe splits and controls, bad input."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from taxvlm.data.errors import DataError, MissingDataError
from taxvlm.io import read_tsv, write_json, write_tsv
from taxvlm.models.lms import build_prompt, load_lm, splice
from taxvlm.models.projector import build_projector
from taxvlm.probing.states import batch_states, capture_states, target_position
from taxvlm.specs import TrainedRun

from spec_builders import frozen_lm, lm_spec

SUFFIX = " in this image?"
SPEC = {"projector": "mlp", "prefix_tokens": 2, "features": "pooled", "feature_norm": "none"}


@pytest.fixture(scope="module")
def lm(tiny_lm_dir: Path):
    model, tokenizer = load_lm(frozen_lm(tiny_lm_dir))
    return model, build_prompt(tokenizer)


def _plain(model, prompt, image_embeds: torch.Tensor, question_ids: list[int]) -> torch.Tensor:
    """`[L+1, T, d]` hidden states of one row from a plain `output_hidden_states` forward."""
    embeds = splice(model, prompt.head, image_embeds[None], torch.tensor([question_ids]))
    return torch.stack(model(inputs_embeds=embeds, output_hidden_states=True).hidden_states)[:, 0]


@pytest.mark.parametrize("repeat", [True, False], ids=["shared-prefix", "one-pass"])
def test_captured_states_equal_a_plain_forward(lm, repeat: bool) -> None:
    model, prompt = lm
    texts = ["Is there an owl in this image?", "Is there a cat in this image?", "Is there an axolotl in this image?"]
    ids = [prompt.question_ids(t) for t in texts]
    targets = [target_position(prompt, t, SUFFIX) for t in texts]
    images = torch.randn(2 if repeat else 3, 2, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    group = torch.tensor([0, 1, 0] if repeat else [0, 1, 2])
    with torch.inference_mode():
        states, last = batch_states(model, prompt, images, group, ids, targets)
        start = len(prompt.head) + 2
        for i, (q, t) in enumerate(zip(ids, targets)):
            plain = _plain(model, prompt, images[group[i]], q)
            torch.testing.assert_close(states["answer"][:, i], plain[:, -1], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(states["target"][:, i], plain[:, start + t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(
                states["image"][:, group[i]], plain[:, len(prompt.head) : start].mean(1), atol=1e-5, rtol=1e-4
            )
            torch.testing.assert_close(last[i], plain[-1, -1], atol=1e-5, rtol=1e-4)
    assert states["answer"].shape[0] == model.config.num_hidden_layers + 1


def test_target_position_is_the_last_token_of_the_asked_name(lm) -> None:
    _, prompt = lm
    for text, name in [
        ("Is there an axolotl in this image?", "axolotl"),
        ("Is there a car part in this image?", "car part"),
    ]:
        ids = prompt.question_ids(text)
        pos = target_position(prompt, text, SUFFIX)
        upto = prompt.tokenizer.decode(prompt.head[len(prompt.head) - prompt.text_head :] + ids[: pos + 1])
        assert upto.endswith(name)
    with pytest.raises(DataError, match="does not end with"):
        target_position(prompt, "What is this?", SUFFIX)


# --- probes on a synthetic cache -------------------------------------------------------------------

from taxvlm.analysis.probing import check_disjoint, fit_runs, probe_stage, run_problems  # noqa: E402

HYPERNYMS = {"animal": [f"c{i}" for i in range(0, 6)], "tool": [f"c{i}" for i in range(6, 12)]}
SETTINGS = {
    "positions": ["answer", "target", "image"],
    "tasks": ["entailment", "transfer", "leaf", "membership"],
    "folds": 3,
    "Cs": [0.1, 1.0],
    "max_iter": 200,
    "seed": 0,
}
KEYS = {
    "encoder": "e",
    "lm": "m",
    "init": "pretrained",
    "condition": "random50",
    "shuffle": "original",
    "objective": "yesno",
    "seed": 7,
}


def _pairs() -> pd.DataFrame:
    return pd.DataFrame([(c, h) for h, cs in HYPERNYMS.items() for c in cs], columns=["concept", "hypernym"])


def _cache(root: Path, image_state, row_state, n_layers: int = 3, per_concept: tuple[int, int] = (4, 2)) -> Path:
    """A cache in capture_states' layout: 12 concepts, hypernym pairs seen for even concepts and held
    out for odd ones; `image_state(layer, leaf, i)` / `row_state(layer, row)` give the vectors."""
    images, rows = [], []
    for c in range(12):
        leaf = f"c{c}"
        for i in range(sum(per_concept)):
            split = "train" if i < per_concept[0] else "test"
            image_id = f"{leaf}/{i}"
            images.append({"split": split, "image_id": image_id, "image_concept": leaf, "leaf": leaf})
            for h in HYPERNYMS:
                answer = "Yes" if leaf in HYPERNYMS[h] else "No"
                test_set = "train" if split == "train" else ("seen" if c % 2 == 0 else "unseen")
                if split == "train" and c % 2:
                    continue  # held-out pairs never reach the training table
                rows.append(
                    {
                        "split": split,
                        "test_set": test_set,
                        "row_id": f"{image_id}|{h}",
                        "question_id": f"{leaf}:hypernym:{h}:{answer}",
                        "image_id": image_id,
                        "image_concept": leaf,
                        "leaf": leaf,
                        "kind": "hypernym",
                        "asked": h,
                        "answer": answer,
                        "margin": 1.0,  # an LM that always answers Yes
                    }
                )
    images, rows = pd.DataFrame(images), pd.DataFrame(rows)
    root.mkdir(parents=True, exist_ok=True)
    write_tsv(images, root / "images.tsv")
    write_tsv(rows, root / "rows.tsv")
    write_json({"layers": n_layers, "hidden_size": 8}, root / "meta.json")
    for name, frame, make in (("image", images, image_state), ("answer", rows, row_state), ("target", rows, row_state)):
        arr = np.stack([[make(layer, r) for r in frame.itertuples()] for layer in range(n_layers + 1)])
        np.save(root / f"{name}.npy", arr.astype(np.float16))
    return root


def _vec(*keys: object, size: int = 8) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(repr(keys).encode())).normal(size=size)


def _best(per_run: pd.DataFrame, task: str, position: str) -> int:
    rows = per_run[(per_run["task"] == task) & (per_run["position"] == position)]
    return int(rows.loc[rows["accuracy"].idxmax(), "layer"])


def test_a_planted_linear_signal_is_found_at_its_layer(tmp_path: Path) -> None:
    """Membership (a shared direction) lives at layer 2 of the image state, leaf identity at layer 3,
    the Yes/No answer at layer 1 of the question states; everything else is noise."""

    def image(layer: int, r) -> np.ndarray:
        x = 0.1 * _vec(layer, r.image_id)
        x += 4 * np.eye(8)[0] * (r.leaf in HYPERNYMS["animal"]) if layer == 2 else 0
        return x + (2 * _vec(r.leaf) if layer == 3 else 0)

    def row(layer: int, r) -> np.ndarray:
        return _vec(layer, r.row_id) + (4 * np.eye(8)[1] * (r.answer == "Yes") if layer == 1 else 0)

    out = {
        k: tmp_path / f"out/{k}" for k in ("runs", "summary", "skipped", "figure", "table_csv", "table_md", "statement")
    }
    write_tsv(_pairs(), tmp_path / "pairs.tsv")
    probe_stage([(KEYS, _cache(tmp_path / "c", image, row))], tmp_path / "pairs.tsv", SETTINGS, out)
    per_run = pd.read_csv(out["runs"], sep="\t")
    assert read_tsv(out["skipped"]).empty and out["figure"].stat().st_size > 0
    assert (
        "membership @ image, pretrained m + e, random50/original: peaks at relative depth 0.67 (layer 2 of 3"
        in out["statement"].read_text()
    )
    best = pd.read_csv(out["table_csv"]).set_index(["task", "position"])
    assert best.loc[("entailment", "answer"), "best_layer"] == 1
    for task, position, layer in [
        ("membership", "image", 2),
        ("leaf", "image", 3),
        ("transfer", "image", 2),
        ("entailment", "answer", 1),
        ("entailment", "target", 1),
        ("transfer", "answer", 1),
    ]:
        assert _best(per_run, task, position) == layer, (task, position)
    at = per_run.set_index(["task", "position", "layer"])
    assert at.loc[("membership", "image", 2), "accuracy"] > 0.9
    assert at.loc[("membership", "image", 2), "selectivity"] > 0.3
    assert at.loc[("entailment", "answer", 1), "accuracy"] > 0.9
    assert at.loc[("entailment", "answer", 1), "lm_accuracy"] == 0.5  # the LM's Yes is right on half the rows
    assert at.loc[("entailment", "answer", 1), "accuracy_lm_wrong"] > 0.9  # the probe reads the answer it misses
    assert at.loc[("entailment", "answer", 0), "accuracy"] < 0.75


def test_grouping_by_concept_is_enforced(tmp_path: Path) -> None:
    """Image states that only identify the concept: leaf identity is readable, membership of unseen
    concepts is not. A membership split that let a test concept into training would read it off."""
    cache = _cache(
        tmp_path / "c",
        lambda layer, r: 3 * _vec(r.leaf, size=8) + 0.3 * _vec(layer, r.image_id),
        lambda layer, r: _vec(layer, r.row_id),
    )
    problems, _ = run_problems(cache, _pairs(), SETTINGS)
    images = read_tsv(cache / "images.tsv")
    for p in problems:
        if p.task in ("membership", "transfer") and p.position == "image":
            train, test = set(images["leaf"].iloc[p.train]), set(images["leaf"].iloc[p.test])
            assert not train & test, (p.task, p.unit)
    per_run, _ = fit_runs([(KEYS, cache)], _pairs(), {**SETTINGS, "positions": ["image"]})
    by_task = per_run.groupby("task")["accuracy"].max()
    assert by_task["leaf"] > 0.9
    assert by_task["membership"] < 0.75
    with pytest.raises(DataError, match="both sides"):
        check_disjoint("membership", "animal", np.array(["c1", "c2"]), np.array(["c2"]))


# --- bad input -------------------------------------------------------------------------------------


def test_a_task_with_one_class_is_skipped_and_listed(tmp_path: Path) -> None:
    """Under `full` no hypernym pair is seen: both transfer probes are listed as skipped, not fitted;
    a training split of Yes rows only skips entailment."""
    cache = _cache(tmp_path / "c", lambda layer, r: _vec(layer, r.image_id), lambda layer, r: _vec(layer, r.row_id))
    rows = read_tsv(cache / "rows.tsv")
    rows.loc[rows["split"].eq("test"), "test_set"] = "unseen"  # full: every test pair is held out
    rows = rows[~(rows["split"].eq("train") & rows["answer"].eq("No"))]  # training rows: one class
    write_tsv(rows, cache / "rows.tsv")
    for name in ("answer", "target"):  # keep the caches aligned with rows.tsv
        np.save(cache / f"{name}.npy", np.load(cache / f"{name}.npy")[:, rows.index.to_numpy()])
    per_run, skipped = fit_runs([(KEYS | {"condition": "full"}, cache)], _pairs(), SETTINGS)
    listed = set(zip(skipped["task"], skipped["position"], skipped["unit"]))
    assert {("transfer", "image", "animal"), ("transfer", "image", "tool"), ("entailment", "answer", "all")} <= listed
    assert set(per_run["task"]) == {"leaf", "membership"}
    assert skipped["reason"].str.len().gt(0).all()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_lm_dir: Path, lm) -> dict[str, Path]:
    """A tiny yes/no run as the workflow leaves it: features, projector.pt, train_config.json,
    condition tables and predictions.tsv (margins from the evaluation's scorer)."""
    from taxvlm.evaluation.scoring import score_questions

    model, prompt = lm
    root = tmp_path_factory.mktemp("run")
    names = ["owl", "cat", "axolotl"]
    image_ids = [f"{n}/{i}" for n in names for i in range(3)]
    feats = torch.randn(len(image_ids), 16, generator=torch.Generator().manual_seed(1))
    torch.save(
        {"image_ids": image_ids, "tokens": feats[:, None].half(), "pooled": feats.half(), "meta": {}},
        root / "features.pt",
    )
    projector = build_projector(SPEC, 16, model.config.hidden_size)
    torch.save(
        {
            "spec": SPEC,
            "d_vis": 16,
            "d_lm": model.config.hidden_size,
            "state_dict": projector.state_dict(),
            "init": "pretrained",
            "seed": 7,
        },
        root / "projector.pt",
    )
    write_json({"lm": lm_spec().record()}, root / "train_config.json")
    rows = [
        {
            "row_id": f"{img}|{n}",
            "image_id": img,
            "image_concept": img.split("/")[0],
            "question_id": f"{img.split('/')[0]}:leaf:{n}",
            "leaf": img.split("/")[0],
            "kind": "leaf",
            "asked": n,
            "answer": "Yes" if img.startswith(n) else "No",
            "text": f"Is there {'an' if n[0] in 'aeiou' else 'a'} {n} in this image?",
        }
        for img in image_ids
        for n in names
    ]
    table = pd.DataFrame(rows)
    tables = {
        "train": table[table["image_id"].str.endswith(("/0", "/1"))],
        "seen": table.iloc[:0],
        "unseen": table.iloc[:0],
        "leaf": table[table["image_id"].str.endswith("/2")],
    }
    paths = {name: root / f"{name}.tsv" for name in tables}
    for name, t in tables.items():
        write_tsv(t, paths[name])
    index = {i: n for n, i in enumerate(image_ids)}
    yes, no = score_questions(
        model,
        prompt,
        projector.eval(),
        feats,
        [index[i] for i in tables["leaf"]["image_id"]],
        list(tables["leaf"]["text"]),
    )
    write_tsv(tables["leaf"].assign(test_set="leaf", margin=(yes - no).numpy()), root / "predictions.tsv")
    return {"root": root, **paths}


SETTINGS_STATES = {
    "batch_size": 4,
    "max_train_rows": 10,
    "max_test_rows": None,
    "seed": 0,
    "margin_tolerance": 1e-3,
    "name_suffix": SUFFIX,
}


def _capture(run_dir: dict[str, Path], tiny_lm_dir: Path, out: Path, **lm_keys: int) -> None:
    tables = {k: run_dir[k] for k in ("train", "seen", "unseen", "leaf")}
    run = TrainedRun(frozen_lm(tiny_lm_dir, **lm_keys), 7, run_dir["root"] / "projector.pt", run_dir["root"] / "features.pt")
    capture_states(run, tables, SETTINGS_STATES, out)


def test_capture_states_caches_every_layer_with_row_ids(run_dir, tiny_lm_dir: Path, tmp_path: Path) -> None:
    _capture(run_dir, tiny_lm_dir, tmp_path / "states")
    meta = json.loads((tmp_path / "states/meta.json").read_text())
    rows, images = read_tsv(tmp_path / "states/rows.tsv"), read_tsv(tmp_path / "states/images.tsv")
    assert len(rows) == 10 + 9 and rows["split"].value_counts()["train"] == 10  # max_train_rows
    assert len(images) == 9 and meta["layers"] == 2
    predicted = read_tsv(run_dir["root"] / "predictions.tsv").set_index("row_id")["margin"].astype(float)
    test = rows[rows["split"] == "test"].set_index("row_id")["margin"].astype(float)
    # float rounding of the tiny LM depends on batch composition and thread count (|Δ| ~1e-3 seen in CI)
    np.testing.assert_allclose(test.to_numpy(), predicted.reindex(test.index).to_numpy(), atol=1e-2, rtol=1e-2)
    for name, n in (("answer", len(rows)), ("target", len(rows)), ("image", len(images))):
        arr = np.load(tmp_path / f"states/{name}.npy", mmap_mode="r")
        assert (
            arr.shape == (3, n, 64)
            and arr.dtype == np.float16
            and np.isfinite(arr).all()
            and np.abs(arr).sum(-1).min() > 0
        )


def test_bad_runs_fail_naming_the_run(run_dir, tiny_lm_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="the LM changed since training"):
        _capture(run_dir, tiny_lm_dir, tmp_path / "a", random_init_seed=3)
    predictions = read_tsv(run_dir["root"] / "predictions.tsv")
    write_tsv(predictions.assign(margin=predictions["margin"].astype(float) + 1), run_dir["root"] / "predictions.tsv")
    try:
        with pytest.raises(DataError, match=f"run {run_dir['root']}: this LM does not reproduce predictions.tsv"):
            _capture(run_dir, tiny_lm_dir, tmp_path / "b")
        (run_dir["root"] / "predictions.tsv").unlink()
        with pytest.raises(MissingDataError, match=f"run {run_dir['root']}: no predictions"):
            _capture(run_dir, tiny_lm_dir, tmp_path / "c")
    finally:
        write_tsv(predictions, run_dir["root"] / "predictions.tsv")
    assert not (tmp_path / "b").exists()


def test_probe_run_selection_and_name_suffix() -> None:
    from taxvlm.config import Run
    from taxvlm.grid import ConfigError
    from taxvlm.probing.selection import name_suffix, probe_runs

    runs = [
        Run("e", "m", init, cond, "original", "yesno", 7)
        for init in ("pretrained", "random")
        for cond in ("full", "random50")
    ]
    assert probe_runs({"enabled": True, "runs": {}}, runs) == runs
    assert probe_runs({"enabled": True, "runs": {"conditions": ["full"], "inits": ["random"]}}, runs) == [runs[2]]
    assert probe_runs({"enabled": False, "runs": {}}, runs) == []
    with pytest.raises(ConfigError, match="config.probe.runs.conditions: 'none' matches no yes/no run"):
        probe_runs({"enabled": True, "runs": {"conditions": ["none"]}}, runs)
    assert name_suffix("Is there {article} {name} in this image?") == " in this image?"
    with pytest.raises(ConfigError, match="config.questions.template"):
        name_suffix("Is it {article}?")
