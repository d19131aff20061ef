"""CE-CLIP's losses (Zhang, Awal and Agrawal, CVPR 2024) on L2-normalised features.

Shapes: images `I` `[B, D]`, their captions `T` `[B, D]`, hard negatives `N` `[B, K, D]` (K types,
one negative per caption and type) and `valid` `[B, K]` (False where the generator marked a type
invalid: that negative takes part in no term). `s(x, y) = scale · cos(x, y)`.

- ITC: symmetric cross-entropy; the negatives of the whole batch are extra columns of the
  image→text logits only (`[B, B + B·K]`); text→image is plain CLIP.
- IMC, the form of the reference repository's "fix bugs" commit (**decision**; its head differs):
  −log e^{s(I_i,T_i)} / (e^{s(I_i,T_i)} + Σ_{j,k} e^{s(T_i,N_jk)}), the sum over every valid negative of
  the batch, averaged over i.
- CMR: mean over all (i, k) of valid_ik · max(0, θ_k + s(I_i,N_ik) − s(I_i,T_i)).
- θ (`update_margins`): after every step θ_k ← mean_i s(I_i,T_i) − mean_{i valid} s(I_i,N_ik),
  detached and clamped to [0, 10], used on the next batch; it starts at 0; a type with no valid
  negative in the batch keeps its θ.
- Total: L_itc + λ_imc L_imc + λ_cmr L_cmr.

`ABLATIONS` names CE-CLIP's Table 4 grid: `itc` (plain CLIP), `hn` (ITC with hard negatives), `imc`
(+ IMC), `cmr` (+ CMR), `all`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

THETA_MAX = 10.0


@dataclass(frozen=True)
class Terms:
    hard_negatives: bool
    imc: bool
    cmr: bool


ABLATIONS = {
    "itc": Terms(False, False, False),
    "hn": Terms(True, False, False),
    "imc": Terms(True, True, False),
    "cmr": Terms(True, False, True),
    "all": Terms(True, True, True),
}


def _flat_negatives(negatives: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`[B·K, D]` negatives and their `[B·K]` validity, row-major (caption, type)."""
    return negatives.reshape(-1, negatives.shape[-1]), valid.reshape(-1)


def itc_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    scale: torch.Tensor | float,
    negatives: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric image–text cross-entropy; hard negatives (if given) as extra image→text columns."""
    target = torch.arange(len(image), device=image.device)
    logits = scale * image @ text.T
    i2t = logits
    if negatives is not None:
        flat, ok = _flat_negatives(negatives, valid)
        extra = (scale * image @ flat.T).masked_fill(~ok[None, :], float("-inf"))
        i2t = torch.cat([logits, extra], dim=1)
    return (F.cross_entropy(i2t, target) + F.cross_entropy(logits.T, target)) / 2


def imc_loss(
    image: torch.Tensor, text: torch.Tensor, negatives: torch.Tensor, valid: torch.Tensor, scale: torch.Tensor | float
) -> torch.Tensor:
    """Intra-modal contrast of each caption against every negative of the batch (module docstring)."""
    flat, ok = _flat_negatives(negatives, valid)
    positive = scale * (image * text).sum(-1)
    intra = (scale * text @ flat.T).masked_fill(~ok[None, :], float("-inf"))
    return (torch.logsumexp(torch.cat([positive[:, None], intra], dim=1), dim=1) - positive).mean()


def _pair_scores(
    image: torch.Tensor, text: torch.Tensor, negatives: torch.Tensor, scale: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """s(I_i, T_i) `[B]` and s(I_i, N_ik) `[B, K]`."""
    return scale * (image * text).sum(-1), scale * torch.einsum("bd,bkd->bk", image, negatives)


def cmr_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    negatives: torch.Tensor,
    valid: torch.Tensor,
    theta: torch.Tensor,
    scale: torch.Tensor | float,
) -> torch.Tensor:
    """Cross-modal rank hinge with the per-type margin θ `[K]` (module docstring)."""
    positive, negative = _pair_scores(image, text, negatives, scale)
    return (F.relu(theta[None, :] + negative - positive[:, None]) * valid).mean()


@torch.no_grad()
def update_margins(
    image: torch.Tensor,
    text: torch.Tensor,
    negatives: torch.Tensor,
    valid: torch.Tensor,
    theta: torch.Tensor,
    scale: torch.Tensor | float,
) -> torch.Tensor:
    """The next step's θ `[K]` from this batch (module docstring)."""
    positive, negative = _pair_scores(image, text, negatives, scale)
    n_valid = valid.sum(0)
    mean_negative = (negative * valid).sum(0) / n_valid.clamp(min=1)
    new = (positive.mean() - mean_negative).clamp(0.0, THETA_MAX)
    return torch.where(n_valid > 0, new, theta).detach()


def ce_clip_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    negatives: torch.Tensor,
    valid: torch.Tensor,
    theta: torch.Tensor,
    scale: torch.Tensor | float,
    terms: Terms,
    lambda_imc: float,
    lambda_cmr: float,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """(total loss, each term's value, the θ for the next step) for one batch of normalised features."""
    valid = valid.bool()
    hn = terms.hard_negatives
    parts = {"itc": itc_loss(image, text, scale, negatives if hn else None, valid if hn else None)}
    if terms.imc:
        parts["imc"] = imc_loss(image, text, negatives, valid, scale)
    if terms.cmr:
        parts["cmr"] = cmr_loss(image, text, negatives, valid, theta, scale)
    total = parts["itc"] + lambda_imc * parts.get("imc", 0.0) + lambda_cmr * parts.get("cmr", 0.0)
    new_theta = update_margins(image, text, negatives, valid, theta, scale)
    return total, {k: float(v.detach()) for k, v in parts.items()}, new_theta
