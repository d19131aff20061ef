"""The analytic FLOP model of a frozen decoder LM's forward and input-gradient backward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

@dataclass(frozen=True)
class Dims:
    d: int
    layers: int
    ff: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def of(cls, config: Any) -> Dims:
        hd = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        return cls(config.hidden_size, config.num_hidden_layers, config.intermediate_size,
                   config.num_attention_heads, kv, hd, config.vocab_size)  # fmt: skip

    @property
    def nonembed(self) -> int:
        """Decoder matmul weights: q, k, v, o projections and the gated MLP (norms ignored)."""
        q = self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        return self.layers * (2 * self.d * q + 2 * self.d * kv + 3 * self.d * self.ff)


def flop_parts(dims: Dims, batch: int, seq: int, logit_positions: int, past: int = 0) -> tuple[float, float, float]:
    """Forward FLOPs (linear, attention, LM head): 2·N_nonembed·B·seq; causal attention
    2 matmuls (QKᵀ, PV) × 2·L·B·seq·(past + seq/2)·H·d_head (the unmasked half of the new×new block);
    LM head 2·d·V per logit position."""
    linear = 2.0 * dims.nonembed * batch * seq
    attn = 4.0 * dims.layers * batch * seq * (past + seq / 2) * dims.heads * dims.head_dim
    return linear, attn, 2.0 * dims.d * dims.vocab * logit_positions


def forward_flops(dims: Dims, batch: int, seq: int, logit_positions: int, past: int = 0) -> float:
    return sum(flop_parts(dims, batch, seq, logit_positions, past))


def train_flops(dims: Dims, batch: int, seq: int, logit_positions: int, past: int = 0) -> float:
    """Forward + backward for input gradients only (the LM is frozen: no weight gradients): linear
    layers and LM head 2× their forward, attention 3× (dQ, dK, dV, dP cost 2× the forward)."""
    linear, attn, head = flop_parts(dims, batch, seq, logit_positions, past)
    return 2 * linear + 3 * attn + 2 * head

