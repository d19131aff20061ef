"""Fused training (`taxvlm.training.loop.train_projectors`): G projectors through one LM pass per step give
each run what its unfused training gives, finish at their own lengths and resume bit-identically."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import torch

from taxvlm.training import loop as loop_mod
from taxvlm.training.resume import History
from taxvlm.evaluation.readouts import evaluate_projector
from taxvlm.io import read_tsv, write_tsv
from taxvlm.training.memory import member_activation_bytes
from taxvlm.training.loop import Member, SharedFiles, train_projector, train_projectors

from spec_builders import training_setup, trained_run
from toy_runs import TOY_ENCODER, TOY_TRAINING, separable_toy

TRAINING = {**TOY_TRAINING, "epochs": 2, "checkpoint_every": 5, "eval_every": 1}
ENCODER = TOY_ENCODER


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two separable concepts; three training tables of different lengths (40, 16 and 40 rows: 5, 2
    and 5 steps per epoch) standing for the conditions of one group."""
    root = tmp_path_factory.mktemp("fused")
    rows = separable_toy(root, 32)
    train = rows[rows.image_id < "img20"]
    write_tsv(train, root / "a.tsv")
    write_tsv(train.iloc[:16], root / "b.tsv")
    write_tsv(train.iloc[::-1], root / "c.tsv")
    write_tsv(rows[rows.image_id >= "img20"], root / "test.tsv")
    return root


def _members(root: Path, name: str) -> list[Member]:
    """Three runs of one group: different tables, lengths and seeds; the first with a validation table."""
    return [
        Member(root / f"{t}.tsv", seed, root / name / t, root / "ckpt" / name / t / "c.pt", val)
        for t, seed, val in (("a", 7, root / "test.tsv"), ("b", 8, None), ("c", 9, None))
    ]


def _fused(root: Path, lm_dir: Path, name: str) -> list[Member]:
    members = _members(root, name)
    train_projectors(training_setup(lm_dir, TRAINING, ENCODER), SharedFiles(root / "f.pt"), members, device="cpu")
    return members


def test_fused_runs_equal_their_unfused_runs(toy: Path, tiny_lm_dir: Path) -> None:
    """Per run: losses within 1e-5 at every step, the same kept steps, identical predictions, the same
    train_config.json; the shorter run left the stack at its own length."""
    for fused in _fused(toy, tiny_lm_dir, "fused"):
        alone = toy / "alone" / fused.out_dir.name
        train_projector(
            training_setup(tiny_lm_dir, TRAINING, ENCODER), SharedFiles(toy / "f.pt"),
            Member(fused.train_tsv, fused.seed, alone, toy / "alone.ckpt", fused.val_tsv), device="cpu",
        )  # fmt: skip
        curves = [read_tsv(run / "curve.tsv").astype(float) for run in (fused.out_dir, alone)]
        assert len(curves[0]) == {"a": 10, "b": 4, "c": 10}[alone.name]
        pd.testing.assert_frame_equal(curves[0].drop(columns="loss"), curves[1].drop(columns="loss"))
        assert (curves[0]["loss"] - curves[1]["loss"]).abs().max() < 1e-5
        assert (fused.out_dir / "train_config.json").read_bytes() == (alone / "train_config.json").read_bytes()
        vals = [read_tsv(run / "val_curve.tsv").astype(float) for run in (fused.out_dir, alone)]
        pd.testing.assert_frame_equal(*vals, atol=1e-5, rtol=0)
        points = [torch.load(run / "checkpoints.pt", weights_only=True)["points"] for run in (fused.out_dir, alone)]
        assert [p["step"] for p in points[0]] == [p["step"] for p in points[1]]
        predictions = []
        for run in (fused.out_dir, alone):
            evaluate_projector(trained_run(tiny_lm_dir, run, toy / "f.pt", fused.seed), {"unseen": toy / "test.tsv"}, 8,
                               run / "predictions.tsv", device="cpu")  # fmt: skip
            predictions.append(read_tsv(run / "predictions.tsv"))
        columns = ["row_id", "prediction", "prediction_paired", "prediction_paired_calibrated"]
        pd.testing.assert_frame_equal(predictions[0][columns], predictions[1][columns])
        margins = [p["margin"].astype(float) for p in predictions]
        assert (margins[0] - margins[1]).abs().max() < 1e-4
    assert not (toy / "ckpt" / "fused").exists()


def test_killed_fused_group_resumes_to_the_same_projectors(
    toy: Path, tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the group's first checkpoint (step 5), which also holds run b's end (4 steps: it
    left the stack before): every run ends bit-identical to the uninterrupted group's."""
    reference = _fused(toy, tiny_lm_dir, "uninterrupted")
    save = loop_mod.save_resume_state
    saved: list[int] = []

    def save_then_die(path: Path, fingerprint: str, history: History, *state: object) -> None:
        save(path, fingerprint, history, *state)
        saved.append(history.step)
        if len(saved) == 3:  # all three members' checkpoints of the first group save
            raise KeyboardInterrupt("killed after the group's first checkpoint")

    monkeypatch.setattr(loop_mod, "save_resume_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _fused(toy, tiny_lm_dir, "resumed")
    assert saved == [5, 4, 5]
    monkeypatch.setattr(loop_mod, "save_resume_state", save)
    resumed = _fused(toy, tiny_lm_dir, "resumed")
    for a, b in zip(reference, resumed):
        for name in ("projector.pt", "checkpoints.pt"):
            x, y = (torch.load(m.out_dir / name, weights_only=True) for m in (a, b))
            states = [(x["state_dict"], y["state_dict"])] if "state_dict" in x else []
            states += [(p["state_dict"], q["state_dict"]) for p, q in zip(x.get("points", []), y.get("points", []))]
            assert all(torch.equal(s[k], t[k]) for s, t in states for k in s)
        for name in ("curve.tsv", "val_curve.tsv"):
            assert (a.out_dir / name).read_bytes() == (b.out_dir / name).read_bytes()


def test_sub_stacked_group_trains_the_projectors_of_one_stack(
    toy: Path, tiny_lm_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A budget of 2.5 members' estimated activations steps the three members two per LM pass (and
    alone once the shorter run left); each run's losses and projector equal the one stack's."""
    one_stack = _fused(toy, tiny_lm_dir, "one_stack")
    caplog.set_level(logging.INFO, logger="taxvlm.training.memory")
    members = _members(toy, "sub_stacks")
    train_projectors(training_setup(tiny_lm_dir, TRAINING, ENCODER), SharedFiles(toy / "f.pt"), members, device="cpu",
                     memory_gib=2.5 * _member_estimate(tiny_lm_dir) / 2**30)  # fmt: skip
    assert "fused stack: 2 of 3 member(s) per LM pass" in caplog.text
    for a, b in zip(one_stack, members):
        curves = [read_tsv(m.out_dir / "curve.tsv").astype(float) for m in (a, b)]
        assert (curves[0]["loss"] - curves[1]["loss"]).abs().max() < 1e-5
        states = [torch.load(m.out_dir / "projector.pt", weights_only=True)["state_dict"] for m in (a, b)]
        assert all(torch.allclose(states[0][k], states[1][k], rtol=0, atol=1e-5) for k in states[0])


def _member_estimate(lm_dir: Path) -> int:
    """`taxvlm.training.memory`'s estimate for one member of the toy group (8 rows of the longest toy row)."""
    from transformers import AutoConfig, AutoTokenizer

    from taxvlm.models.lms import build_prompt

    prompt = build_prompt(AutoTokenizer.from_pretrained(lm_dir))
    length = len(prompt.head) + TRAINING["prefix_tokens"] + len(prompt.question_ids("Is there a cat in this image?"))
    answer = len(prompt.answers["Yes"])
    rows = TRAINING["batch_size"]
    return member_activation_bytes(AutoConfig.from_pretrained(lm_dir), 4, rows, length + answer - 1, rows * answer)
