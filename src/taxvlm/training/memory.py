"""Activation memory of fused training: how many members one LM pass stacks, and the peak a job reports.

A fused step (`taxvlm.training.loop.train_projectors`) keeps every stacked member's activations from the
LM forward until the backward, so its memory grows with members x batch. Under
`training.fuse_memory_gib` a group's job steps its members in sub-stacks of at most
floor(budget / one member's estimate) members per LM pass (at least 1). Sub-stacking changes no
result beyond float rounding: each member's loss is the mean over its own target tokens and the
projectors share no parameter. The stack size follows from the config, the LM's config, the
training tables and the dtype the job runs in (bf16 on a GPU, fp32 on a CPU), never from a
measurement, so a resumed job stacks exactly as the killed one did.
"""

from __future__ import annotations

import logging
import math
import resource
from typing import Any

import torch

log = logging.getLogger(__name__)

FP32 = 4


def layer_token_bytes(lm_config: Any, dtype_bytes: int) -> int:
    """Bytes autograd keeps per decoder layer and position of a Llama-style layer whose weights are
    frozen (so no linear keeps its input): the two RMSNorms' inputs upcast to fp32 with their rsqrt;
    the attention's q (after RoPE), k, v and output, and its fp32 log-sum-exp per head (SDPA); the
    MLP's gate, up and activated gate. tests/test_memory.py checks the count against the tensors
    autograd saves; architectures with more norms per layer (Gemma 3) keep somewhat more."""
    heads = int(lm_config.num_attention_heads)
    head_dim = int(getattr(lm_config, "head_dim", None) or lm_config.hidden_size // heads)
    kv_heads = int(getattr(lm_config, "num_key_value_heads", None) or heads)
    norms = 2 * (int(lm_config.hidden_size) + 1) * FP32
    attention = (2 * heads + 2 * kv_heads) * head_dim * dtype_bytes + heads * FP32
    mlp = 3 * int(lm_config.intermediate_size) * dtype_bytes
    return norms + attention + mlp


def member_activation_bytes(lm_config: Any, dtype_bytes: int, rows: int, length: int, answer_tokens: int) -> int:
    """Estimated activation bytes of one member's forward+backward: `rows` rows of `length`
    positions through every layer and the final norm, plus the fp32 log-softmax over the vocabulary
    at its `answer_tokens` target positions (the LM head runs only there). With `batching: images`
    rows share their image's prefix, so this is an upper bound there."""
    positions = rows * length
    layers = int(lm_config.num_hidden_layers) * layer_token_bytes(lm_config, dtype_bytes)
    final_norm = (int(lm_config.hidden_size) + 1) * FP32
    return positions * (layers + final_norm) + answer_tokens * int(lm_config.vocab_size) * FP32


def stack_size(memory_gib: float | None, member_bytes: int, members: int) -> int:
    """Members per LM pass: all without a budget, else as many as fit in it (at least 1)."""
    if memory_gib is None or member_bytes <= 0:
        return max(1, members)
    return max(1, min(members, math.floor(float(memory_gib) * 2**30 / member_bytes)))


def fused_stack_size(
    lm_config: Any,
    dtype_bytes: int,
    memory_gib: float | None,
    batch_size: int,
    lengths: list[list[tuple[int, int]]],
) -> int:
    """The sub-stack size of a fused job, logged with its estimate. `lengths[g]` holds member g's
    training rows as (positions before the first target token, target tokens) pairs; a member's
    step is its `batch_size` longest rows, padded to the group's longest row (as a stack is)."""
    members = [rows for rows in lengths if rows]
    if not members:
        return max(1, len(lengths))
    length = max(before + target - 1 for rows in members for before, target in rows)
    rows = max(min(batch_size, len(m)) for m in members)
    answer_tokens = max(sum(sorted((t for _, t in m), reverse=True)[:batch_size]) for m in members)
    estimate = member_activation_bytes(lm_config, dtype_bytes, rows, length, answer_tokens)
    size = stack_size(memory_gib, estimate, len(lengths))
    budget = "no limit" if memory_gib is None else f"{float(memory_gib):g} GiB"
    log.info(
        "fused stack: %d of %d member(s) per LM pass (estimated activations %.1f MiB per member: %d rows of "
        "at most %d positions; training.fuse_memory_gib: %s)",
        size, len(lengths), estimate / 2**20, rows, length, budget,
    )  # fmt: skip
    return size


def peak_memory(dev: torch.device) -> str:
    """The job's measured peak, for its log (activations scale with members x batch)."""
    if dev.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB allocated on the GPU"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return f"{rss:.2f} GiB resident (ru_maxrss: the whole process's peak, the LM load included)"
