"""Compiled LM forward (`taxvlm.models.compiled`, `training.compile`): bucketed padding keeps hidden states,
losses and gradients equal to eager (fp32, CPU) and compiles once per bucket.

Tolerances are measured (fp32 on a CPU): hidden states and input gradients differ from eager by
about 1e-6 relative to their largest value (aot_eager: the padded batch's matmuls block
differently; inductor: its fused kernels), training losses over ten steps by about 1e-6 absolute and
the projector's weights after them by about 1e-5 relative (the steps accumulate the rounding); the
tests allow 1e-5, 1e-5 and 1e-4. `aot_eager` tests the padding and recompile logic in seconds; one
test compiles with inductor (the backend `training.compile` uses).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch._inductor.config
from torch._dynamo.utils import counters

from taxvlm.models import compiled as compile_mod
from taxvlm.assets.tiny import build_tiny_causal_lm
from taxvlm.models.compiled import CompiledLM
from taxvlm.io import read_json, read_tsv, write_tsv
from taxvlm.models.lms import build_prompt, decoder_forward, load_lm
from taxvlm.models.projector import build_projector
from taxvlm.training import loop as loop_mod
from taxvlm.training.loop import Member, SharedFiles, train_projectors
from taxvlm.training.objective import batch_loss

from spec_builders import frozen_lm, training_setup
from toy_runs import TOY_ENCODER, TOY_TRAINING, separable_toy

ENCODER = TOY_ENCODER
TRAINING = {**TOY_TRAINING, "epochs": 2, "checkpoint_every": 50}


def _graphs() -> int:
    return int(counters["stats"]["unique_graphs"])


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b| relative to the largest |b| (0 when both are zero)."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _check_shapes(lm: CompiledLM, x: torch.Tensor) -> tuple[float, float]:
    """Relative |Δ| of the hidden states and of the input gradient of a random linear readout (a
    norm-invariant one such as the sum of squares would have a vanishing gradient), compiled vs eager."""
    x = x.clone().requires_grad_(True)
    readout = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    hidden = lm.hidden(x)
    (grad,) = torch.autograd.grad((hidden * readout).sum(), x)
    eager, _ = decoder_forward(lm.lm, x)
    (eager_grad,) = torch.autograd.grad((eager * readout).sum(), x)
    return _relative(hidden.detach(), eager.detach()), _relative(grad, eager_grad)


def test_bucketed_padding_is_exact_and_compiles_once_per_bucket(tiny_lm_dir: Path) -> None:
    """Odd shapes pad to (8-row, 16-token) buckets; rows ratchet to the most seen per grad mode, so
    three training shapes compile twice (lengths 16 and 32) and scoring once more; dynamo agrees."""
    torch._dynamo.reset()
    model, _ = load_lm(frozen_lm(tiny_lm_dir), "cpu")
    lm = CompiledLM(model, "default", row_bucket=8, length_bucket=16, backend="aot_eager")
    before, gen = _graphs(), torch.Generator().manual_seed(0)
    for rows, length in ((5, 13), (3, 20), (2, 7)):
        d_hidden, d_grad = _check_shapes(lm, torch.randn(rows, length, 64, generator=gen))
        assert d_hidden < 1e-5 and d_grad < 1e-5
    assert lm.shapes == {(8, 16, True, False), (8, 32, True, False)}
    with torch.inference_mode():
        x = torch.randn(11, 9, 64, generator=gen)
        assert _relative(lm.hidden(x), decoder_forward(model, x)[0]) < 1e-5
    assert lm.shapes == {(8, 16, True, False), (8, 32, True, False), (16, 16, False, False)}
    assert _graphs() - before == lm.compiles == 3


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two separable concepts; two training tables of 40 and 16 rows (5 and 2 steps per epoch, so
    one member leaves the stack early) and a validation table."""
    root = tmp_path_factory.mktemp("compile")
    rows = separable_toy(root, 24)
    train = rows[rows.image_id < "img20"]
    write_tsv(train, root / "a.tsv")
    write_tsv(train.iloc[:16], root / "b.tsv")
    write_tsv(rows[rows.image_id >= "img20"], root / "val.tsv")
    return root


def _train(root: Path, lm_dir: Path, name: str, compile_mode: str) -> list[Path]:
    members = [
        Member(root / f"{t}.tsv", seed, root / name / t, root / "ckpt" / name / t / "c.pt", root / "val.tsv")
        for t, seed in (("a", 7), ("b", 8))
    ]
    training = {**TRAINING, "compile": compile_mode}
    train_projectors(training_setup(lm_dir, training, ENCODER), SharedFiles(root / "f.pt"), members, device="cpu")
    return [m.out_dir for m in members]


def test_compiled_fused_training_equals_eager(toy: Path, tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`training.compile` (aot_eager here): every member's losses, validation curve and projector
    equal eager's within the measured tolerance; the compile mode is in train_config.json (the run's
    identity); training and validation compile once per (padded shape, grad mode, determinism)."""
    wrappers: list[CompiledLM] = []

    def spy(model: torch.nn.Module, mode: str, row_bucket: int) -> torch.nn.Module:
        if mode == "none":
            return model
        wrappers.append(CompiledLM(model, mode, row_bucket, backend="aot_eager"))
        return wrappers[-1]

    monkeypatch.setattr(loop_mod, "maybe_compiled", spy)
    eager = _train(toy, tiny_lm_dir, "eager", "none")
    assert not wrappers
    torch._dynamo.reset()
    before = _graphs()
    compiled = _train(toy, tiny_lm_dir, "compiled", "default")
    for run_e, run_c in zip(eager, compiled):
        curves = [read_tsv(run / "curve.tsv").astype(float) for run in (run_e, run_c)]
        assert len(curves[0]) == {"a": 10, "b": 4}[run_e.name]
        assert (curves[0]["loss"] - curves[1]["loss"]).abs().max() < 1e-5
        vals = [read_tsv(run / "val_curve.tsv").astype(float) for run in (run_e, run_c)]
        pd.testing.assert_frame_equal(*vals, atol=1e-5, rtol=0)
        states = [torch.load(run / "projector.pt", weights_only=True)["state_dict"] for run in (run_e, run_c)]
        assert max(_relative(states[1][k], states[0][k]) for k in states[0]) < 1e-4
        configs = [read_json(run / "train_config.json")["training"]["compile"] for run in (run_e, run_c)]
        assert configs == ["none", "default"]
    (lm,) = wrappers  # (rows, length, grad, deterministic): training pads to both members' 2 x 8 rows
    # (also once b has left), validation to its 8 rows, at step 0 outside training's deterministic block
    assert lm.shapes == {(16, 16, True, True), (8, 16, False, False), (8, 16, False, True)}
    assert _graphs() - before == lm.compiles == 3


def _cpp_compiler() -> str | None:
    return shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


@pytest.mark.skipif(_cpp_compiler() is None, reason="inductor on a CPU needs a C++ compiler (g++/c++/clang++)")
def test_inductor_training_step_equals_eager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One training step's loss and projector gradients through the inductor-compiled forward
    (`training.compile: default`) equal eager's (a one-layer LM, and kernels compiled in this
    process rather than a worker pool that would import torch again: compile time is this test's)."""
    monkeypatch.setattr(torch._inductor.config, "compile_threads", 1)
    build_tiny_causal_lm(tmp_path / "lm", {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                           "intermediate_size": 64, "seed": 0})  # fmt: skip
    model, tok = load_lm(frozen_lm(tmp_path / "lm"), "cpu")
    prompt = build_prompt(tok)
    feats = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    spec = {"projector": "mlp", "prefix_tokens": 2, "features": "pooled", "feature_norm": "none"}
    projector = build_projector(spec, 16, 32)
    questions = [prompt.question_ids(f"Is there a {n} in this image?") for n in ("cat", "owl", "duck")] * 2
    answers = [prompt.answers[a] for a in ("Yes", "No", "No", "Yes", "No", "Yes")]
    compiled = compile_mod.maybe_compiled(model, "default", row_bucket=8)
    results = []
    for lm in (model, compiled):
        projector.zero_grad()
        loss = batch_loss(lm, prompt.head, projector, feats, torch.arange(6), questions, answers)
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in projector.parameters()]))
    assert abs(results[0][0] - results[1][0]) < 1e-5
    assert max(_relative(b, a) for a, b in zip(results[0][1], results[1][1])) < 1e-5
    assert isinstance(compiled, CompiledLM) and compiled.compiles == 1
