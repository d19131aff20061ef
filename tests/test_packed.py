"""Packed `images` batching (`taxvlm.models.packed`): one sequence per image gives the two-pass shared
prefix's losses and projector gradients; an LM that cannot take the mask trains with `rows` instead."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from taxvlm.training import objective as objective_mod
from taxvlm.io import read_tsv, write_tsv
from taxvlm.models.lms import build_prompt, load_lm
from taxvlm.models import packed as packed_mod
from taxvlm.models.packed import FULL, packed_continuation_logits, packing_refusal
from taxvlm.models.projector import build_projector
from taxvlm.evaluation.scoring import continuation_logits
from taxvlm.training.loop import Member, SharedFiles, train_projector, train_projectors
from taxvlm.training.objective import fused_batch_losses

from spec_builders import frozen_lm, training_setup
from toy_runs import TOY_ENCODER, TOY_TRAINING, separable_toy

ENCODER = TOY_ENCODER
TRAINING = {**TOY_TRAINING, "epochs": 1, "checkpoint_every": 0, "eval_every": 1, "batching": "images"}
SEEDS = (("a", 7), ("b", 8))  # the training tables of a group's two members and their seeds
NAMES = ["cat", "owl", "ñandú", "dog", "butterfly", "cow", "apple"]  # prompts of different lengths


@pytest.fixture(params=["llama/sdpa", "llama/eager", "gemma3/sdpa"])
def lm(request: pytest.FixtureRequest) -> tuple[torch.nn.Module, Any]:
    """Each tiny LM under each attention implementation that takes a custom mask, and its tokenizer
    (Gemma-3: sliding window 4, shorter than every row, so a mask without the window would be wrong)."""
    arch, impl = request.param.split("/")
    lm_dir = request.getfixturevalue({"llama": "tiny_lm_dir", "gemma3": "tiny_gemma3_dir"}[arch])
    model, tokenizer = load_lm(frozen_lm(lm_dir), "cpu")
    model.set_attn_implementation(impl)
    return model, tokenizer


def test_packed_losses_and_gradients_equal_the_two_pass_ones(lm: tuple[torch.nn.Module, Any]) -> None:
    """A fused step of two members, images repeating within each: per-member losses within 1e-5 and
    the same projector gradients, packed vs two-pass; the LM is accepted for packing."""
    model, tokenizer = lm
    assert packing_refusal(model) is None
    prompt = build_prompt(tokenizer)
    torch.manual_seed(0)
    feats = torch.randn(6, 16)
    spec = {"projector": "mlp", "prefix_tokens": 2, "features": "pooled", "feature_norm": "none"}
    projectors = [build_projector(spec, 16, 64) for _ in "ab"]
    idx = [torch.tensor([2, 0, 2, 1, 0, 2, 1]), torch.tensor([5, 3, 5, 5])]
    questions = [[prompt.question_ids(f"Is there a {NAMES[(i + g) % 7]} in this image?") for i in range(len(x))]
                 for g, x in enumerate(idx)]  # fmt: skip
    answers = [[prompt.answers["Yes" if (i + g) % 3 else "No"] for i in range(len(x))] for g, x in enumerate(idx)]

    def losses_and_grads(packed: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        for p in projectors:
            p.zero_grad()
        losses = fused_batch_losses(model, prompt.head, projectors, feats, idx, questions, answers, packed=packed)
        torch.autograd.backward(losses)
        return torch.stack(losses).detach(), [p.grad.clone() for proj in projectors for p in proj.parameters()]

    (packed, packed_grads), (two_pass, two_pass_grads) = losses_and_grads(True), losses_and_grads(False)
    torch.testing.assert_close(packed, two_pass, atol=1e-5, rtol=0)
    for p, t in zip(packed_grads, two_pass_grads):
        torch.testing.assert_close(p, t, atol=1e-5, rtol=1e-4)


def _tiny(config: Any, impl: str) -> torch.nn.Module:
    """A random 2-layer LM of `config`'s architecture (no tokenizer: token ids are drawn)."""
    from transformers import AutoModelForCausalLM

    sizes = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=64, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=100, sliding_window=4)  # fmt: skip
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config(**sizes), attn_implementation=impl).eval()


def test_gemma2_softcapped_eager_attention_packs_exactly() -> None:
    """Gemma-2: sliding-window layers and attention-score soft-capping (eager only): accepted, and the
    packed logits equal the two-pass ones."""
    from transformers import Gemma2Config

    model = _tiny(Gemma2Config, "eager")
    assert model.config.attn_logit_softcapping and packing_refusal(model) is None
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 100, (n,), generator=gen).tolist() for n in (5, 7, 6, 9)]
    prompts = [[7, 8] + p for p in prompts]  # a shared prompt start
    targets = [torch.randint(3, 100, (n,), generator=gen).tolist() for n in (2, 3, 1, 2)]
    embeds, group = torch.randn(2, 3, 64, generator=gen), torch.tensor([1, 0, 1, 1])
    two_pass = continuation_logits(model, [2], embeds, group, prompts, targets)
    for p, t in zip(packed_continuation_logits(model, [2], embeds, group, prompts, targets), two_pass):
        torch.testing.assert_close(p, t, atol=1e-5, rtol=0)


def test_refusals_name_the_reason() -> None:
    """A sliding window without per-layer types (Mistral: one 4-D mask would drop the window) and an
    attention implementation that takes no custom mask are refused before any forward."""
    from transformers import LlamaConfig, MistralConfig

    assert "sliding window but no per-layer types" in packing_refusal(_tiny(MistralConfig, "sdpa"))
    model = _tiny(LlamaConfig, "sdpa")
    model.config._attn_implementation = "flash_attention_2"
    assert "'flash_attention_2' takes no custom 4-D mask" in packing_refusal(model)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two concepts, 12 training images x 2 questions (3 steps of 8 rows), 4 validation images."""
    root = tmp_path_factory.mktemp("packed")
    rows = separable_toy(root, 16)
    write_tsv(rows[rows.image_id < "img12"], root / "a.tsv")
    write_tsv(rows[rows.image_id < "img12"].iloc[::-1], root / "b.tsv")
    write_tsv(rows[rows.image_id >= "img12"], root / "val.tsv")
    return root


def test_fused_packed_training_equals_unfused_two_pass_training(
    toy: Path, tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two members trained fused and packed vs each alone through the two-pass shared prefix: losses
    within 1e-5 at every step, the same validation curve; the packed path ran."""
    calls: list[int] = []
    packed = objective_mod.packed_continuation_logits
    monkeypatch.setattr(objective_mod, "packed_continuation_logits", lambda *a: calls.append(1) or packed(*a))
    members = [Member(toy / f"{t}.tsv", s, toy / "fused" / t, toy / "ckpt" / t, toy / "val.tsv") for t, s in SEEDS]
    train_projectors(training_setup(tiny_lm_dir, TRAINING, ENCODER), SharedFiles(toy / "f.pt"), members, device="cpu")
    assert len(calls) == 3  # one packed pass per fused step
    monkeypatch.setattr(objective_mod, "packed_continuation_logits", continuation_logits)
    for m in members:
        alone = toy / "alone" / m.out_dir.name
        alone_member = Member(m.train_tsv, m.seed, alone, toy / "alone.ckpt", m.val_tsv)
        train_projector(training_setup(tiny_lm_dir, TRAINING, ENCODER), SharedFiles(toy / "f.pt"), alone_member, device="cpu")
        curves = [read_tsv(run / "curve.tsv").astype(float) for run in (m.out_dir, alone)]
        assert len(curves[0]) == 3 and (curves[0]["loss"] - curves[1]["loss"]).abs().max() < 1e-5
        vals = [read_tsv(run / "val_curve.tsv").astype(float) for run in (m.out_dir, alone)]
        pd.testing.assert_frame_equal(*vals, atol=1e-5, rtol=0)
        assert json.loads((m.out_dir / "train_config.json").read_text())["batching"] == "images"


def test_lm_that_cannot_take_the_mask_trains_with_rows_and_says_why_once(
    toy: Path, tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An attention implementation taken as maskless (here `sdpa`, for the test): `images` falls back
    to `rows` for the whole group with one warning naming the LM and the reason, and trains as a `rows` run."""
    monkeypatch.setattr(packed_mod, "MASKABLE", ("eager",))
    members = [Member(toy / f"{t}.tsv", s, toy / "refused" / t, toy / "ckpt" / f"r{t}", None) for t, s in SEEDS]
    with caplog.at_level(logging.WARNING, logger="taxvlm.models.packed"):
        train_projectors(training_setup(tiny_lm_dir, TRAINING, ENCODER), SharedFiles(toy / "f.pt"), members, device="cpu")
    warnings = [r.getMessage() for r in caplog.records if r.name == "taxvlm.models.packed"]
    assert len(warnings) == 1 and str(tiny_lm_dir) in warnings[0] and "'sdpa' takes no custom" in warnings[0]
    config = json.loads((members[0].out_dir / "train_config.json").read_text())
    assert config["batching"] == "rows" and config["training"]["batching"] == "images"
    rows = toy / "rows"
    train_projector(training_setup(tiny_lm_dir, {**TRAINING, "batching": "rows"}, ENCODER), SharedFiles(toy / "f.pt"),
                    Member(toy / "a.tsv", 7, rows, toy / "rows.ckpt"), device="cpu")  # fmt: skip
    curves = [read_tsv(run / "curve.tsv").astype(float) for run in (members[0].out_dir, rows)]
    assert (curves[0]["loss"] - curves[1]["loss"]).abs().max() < 1e-5  # the rows order (images' differs)


def test_probe_catches_a_mask_that_misses_the_sliding_layers(
    tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gemma-3 given one 4-D mask for all its layers (what a plain custom mask does there): the probe
    sees the sliding layers run without their own mask and refuses."""
    model, _ = load_lm(frozen_lm(tiny_gemma3_dir), "cpu")
    one_mask = packed_mod._mask_argument
    monkeypatch.setattr(packed_mod, "_mask_argument", lambda allowed, _, *rest: one_mask(allowed, [FULL], *rest))
    assert "does not reach its sliding_attention layers" in packing_refusal(model)


def test_tiny_gemma3_takes_the_benchmarks_head_dim() -> None:
    """`perf/packed.py` builds Gemma-3-270m's shape: head_dim 256 with 640 hidden / 4 heads."""
    from taxvlm.assets.tiny import _tiny_lm_config, build_tiny_tokenizer

    options = {"architecture": "gemma3", "hidden_size": 640, "num_attention_heads": 4, "head_dim": 256}
    config = _tiny_lm_config(options, build_tiny_tokenizer({}))
    assert config.head_dim == config.query_pre_attn_scalar == 256
    assert _tiny_lm_config({"architecture": "gemma3"}, build_tiny_tokenizer({})).head_dim == 16  # 64 / 4
