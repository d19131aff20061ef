"""The activation estimate of fused training (`taxvlm.training.memory`): it counts what autograd keeps for a
member's backward, grows linearly in batch and members, and sizes the sub-stacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taxvlm.training.memory import fused_stack_size, member_activation_bytes, peak_memory, stack_size
from taxvlm.models.lms import build_prompt, load_lm
from taxvlm.models.projector import build_projector
from taxvlm.training.objective import fused_batch_losses

from spec_builders import frozen_lm

PREFIX, ROWS = 4, 8


def _saved_bytes(lm_dir: Path, members: int) -> tuple[int, int]:
    """(bytes of the distinct non-parameter tensors autograd saves in one fused step of `members`
    members of ROWS rows each, the estimate of `member_activation_bytes` for one member)."""
    model, tokenizer = load_lm(frozen_lm(lm_dir), "cpu")
    prompt = build_prompt(tokenizer)
    spec = {"projector": "mlp", "prefix_tokens": PREFIX, "features": "pooled", "feature_norm": "none"}
    torch.manual_seed(0)
    projectors = [build_projector(spec, 16, model.config.hidden_size) for _ in range(members)]
    question = prompt.question_ids("Is there a cat in this image?")
    answer = prompt.answers["Yes"]
    frozen = {p.untyped_storage().data_ptr() for m in (model, *projectors) for p in m.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.untyped_storage().data_ptr() not in frozen:
            saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fused_batch_losses(
            model, prompt.head, projectors, torch.randn(members * ROWS, 16),
            [torch.arange(g * ROWS, (g + 1) * ROWS) for g in range(members)],
            [[question] * ROWS] * members, [[answer] * ROWS] * members,
        )  # fmt: skip
    length = len(prompt.head) + PREFIX + len(question) + len(answer) - 1
    return sum(saved.values()), member_activation_bytes(model.config, 4, ROWS, length, ROWS * len(answer))


@pytest.mark.parametrize("members", [1, 2, 4])
def test_estimate_counts_what_autograd_saves_for_the_stack(tiny_lm_dir: Path, members: int) -> None:
    """The stack of G members saves G members' estimate, within 10 % (the estimate leaves out the
    rotary tables and the projectors' few activations)."""
    saved, estimate = _saved_bytes(tiny_lm_dir, members)
    assert abs(saved - members * estimate) <= 0.1 * saved, (saved, members * estimate)


def test_estimate_grows_linearly_in_batch() -> None:
    config = type("Config", (), {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                 "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 512})()  # fmt: skip
    one = member_activation_bytes(config, 2, 8, 20, 16)
    assert member_activation_bytes(config, 2, 16, 20, 32) == 2 * one
    assert member_activation_bytes(config, 2, 32, 20, 64) == 4 * one
    assert member_activation_bytes(config, 4, 8, 20, 16) > one  # fp32 keeps more than bf16


def test_stack_size_fits_the_budget_and_keeps_at_least_one() -> None:
    gib = 2**30
    assert stack_size(None, gib, 5) == 5
    assert stack_size(3.5, gib, 5) == 3
    assert stack_size(100.0, gib, 5) == 5
    assert stack_size(0.1, gib, 5) == 1
    config = type("Config", (), {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 16, "vocab_size": 10})()  # fmt: skip
    rows = [[(10, 2)] * 20, [(12, 3)] * 4, []]
    # 8 rows (a batch of the first member) of the longest row (12 + 3 - 1); the most targets in a batch: 8 x 2
    member = member_activation_bytes(config, 4, 8, 14, 16)
    assert fused_stack_size(config, 4, 2.5 * member / gib, 8, rows) == 2
    assert fused_stack_size(config, 4, None, 8, [[], []]) == 2


def test_cpu_peak_says_it_is_the_process_peak() -> None:
    assert "the whole process's peak" in peak_memory(torch.device("cpu"))
