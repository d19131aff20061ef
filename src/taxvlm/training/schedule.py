"""The learning-rate schedule of both trainers (the projector's, `taxvlm.training.loop`, and the contrastive
one, `taxvlm.compositional.contrastive`): linear warm-up, then cosine decay to 0 (open_clip's, which
CE-CLIP trains with), from torch's own schedulers.

Factor at step s (0-based) with `warmup` = w and `total` = T: (s + 1) / w while s < w, then
½(1 + cos(π (s − w) / max(1, T − w))). `transformers.get_cosine_schedule_with_warmup` was not taken:
its warm-up is s / w, so its first step has learning rate 0 and every warm-up step lags one behind,
which would change every trained model. torch's `LinearLR` + `CosineAnnealingLR` give the same
factors, though computed recursively: they agree with the closed form above to about 1e-14 relative
(tests/test_schedule.py), below what a float32 AdamW step resolves.
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> LRScheduler:
    """The schedule of the module docstring over `total` steps, the first `warmup` of them warm-up."""
    if warmup < 0:
        raise ValueError(f"warm-up steps must be >= 0; got {warmup}")
    ramp = None
    if warmup:
        ramp = LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=max(1, warmup - 1))
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total - warmup), eta_min=0.0)
    return cosine if ramp is None else SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])
