"""The only trainable part: image features → LM input embeddings (soft prefix tokens).

- `mlp` (paper): Linear(d_vis→d_lm) → GELU → Linear(d_lm→d_lm), per visual token.
- `linear` (LiMBeR): Linear(d_vis→d_lm) per visual token.
With pooled input (`features: pooled`) the first Linear maps d_vis → k·d_lm and is split into
k = `prefix_tokens` tokens; `mlp` then applies GELU and its second Linear per token.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Projector(nn.Module):
    def __init__(self, kind: str, features: str, d_vis: int, d_lm: int, prefix_tokens: int = 1):
        super().__init__()
        if kind not in ("mlp", "linear"):
            raise ValueError(f"training field 'projector' is {kind!r}; expected 'mlp' or 'linear'")
        if features not in ("tokens", "pooled"):
            raise ValueError(f"encoder field 'features' is {features!r}; expected 'tokens' or 'pooled'")
        self.k = prefix_tokens if features == "pooled" else 1
        self.d_lm = d_lm
        self.inp = nn.Linear(d_vis, self.k * d_lm)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(d_lm, d_lm)) if kind == "mlp" else nn.Identity()

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """`[B, T, d_vis]` tokens or `[B, d_vis]` pooled → `[B, T or k, d_lm]`."""
        x = self.inp(feats)
        x = x.unflatten(-1, (self.k, self.d_lm)) if feats.ndim == 2 else x
        return self.out(x)


def projector_spec(training: dict[str, Any], encoder_spec: dict[str, Any]) -> dict[str, Any]:
    """The projector's part of the training config plus the encoder's feature choice."""
    return {
        "projector": training.get("projector", "mlp"),
        "prefix_tokens": int(training.get("prefix_tokens", 1)),
        "features": encoder_spec.get("features", "tokens"),
    }


def build_projector(spec: dict[str, Any], d_vis: int, d_lm: int) -> Projector:
    return Projector(spec["projector"], spec["features"], d_vis, d_lm, spec["prefix_tokens"])
