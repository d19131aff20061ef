"""The only trainable part: image features → LM input embeddings (soft prefix tokens).

- `mlp` (paper): Linear(d_vis→d_lm) → GELU → Linear(d_lm→d_lm), per visual token.
- `linear` (LiMBeR): Linear(d_vis→d_lm) per visual token.
With pooled input (`features: pooled`) the first Linear maps d_vis → k·d_lm and is split into
k = `prefix_tokens` tokens; `mlp` then applies GELU and its second Linear per token.

`feature_norm: standardize` (**decision** for the CPU default) first subtracts the mean and divides
by the standard deviation of each feature dimension over the training images. Frozen features are
far from centred (EfficientNet's pooled features are non-negative, all pairwise cosines ~0.8), which
makes a freshly initialised projector map every image to nearly the same prefix; standardising is
the cheap preconditioning that lets a few hundred steps learn what the paper's ~7,000 learned. The
statistics are buffers of the projector, saved with it, so evaluation applies the same transform.
`none` (the paper's and LiMBeR's recipe) feeds the features as they are.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

FEATURE_NORMS = ("none", "standardize")


class Projector(nn.Module):
    def __init__(
        self, kind: str, features: str, d_vis: int, d_lm: int, prefix_tokens: int = 1, feature_norm: str = "none"
    ):
        super().__init__()
        if kind not in ("mlp", "linear"):
            raise ValueError(f"training field 'projector' is {kind!r}; expected 'mlp' or 'linear'")
        if features not in ("tokens", "pooled"):
            raise ValueError(f"encoder field 'features' is {features!r}; expected 'tokens' or 'pooled'")
        if feature_norm not in FEATURE_NORMS:
            raise ValueError(f"training field 'feature_norm' is {feature_norm!r}; expected one of {list(FEATURE_NORMS)}")
        self.feature_norm = feature_norm
        self.register_buffer("feature_mean", torch.zeros(d_vis))
        self.register_buffer("feature_std", torch.ones(d_vis))
        self.k = prefix_tokens if features == "pooled" else 1
        self.d_lm = d_lm
        self.inp = nn.Linear(d_vis, self.k * d_lm)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(d_lm, d_lm)) if kind == "mlp" else nn.Identity()

    @torch.no_grad()
    def fit_feature_norm(self, train_feats: torch.Tensor) -> None:
        """Set the standardisation statistics from the training images' features (`[N, d_vis]` or
        `[N, T, d_vis]`: every token counts); a no-op unless `feature_norm` is `standardize`."""
        if self.feature_norm != "standardize":
            return
        flat = train_feats.float().reshape(-1, train_feats.shape[-1])
        self.feature_mean.copy_(flat.mean(0))
        self.feature_std.copy_(flat.std(0).clamp_min(1e-6))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """`[B, T, d_vis]` tokens or `[B, d_vis]` pooled → `[B, T or k, d_lm]`."""
        x = self.inp((feats - self.feature_mean) / self.feature_std)
        x = x.unflatten(-1, (self.k, self.d_lm)) if feats.ndim == 2 else x
        return self.out(x)


def build_projector(spec: dict[str, Any], d_vis: int, d_lm: int) -> Projector:
    """The projector of `spec` (`taxvlm.specs.TrainingSetup.projector`, as projector.pt stores it)."""
    return Projector(spec["projector"], spec["features"], d_vis, d_lm, spec["prefix_tokens"], spec["feature_norm"])
