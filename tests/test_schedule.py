"""The one warm-up + cosine schedule (`taxvlm.training.schedule`, torch's schedulers) against the hand-written
factor both trainers used before, step by step."""

from __future__ import annotations

import math

import pytest
import torch

from taxvlm.training.schedule import warmup_cosine


def _earlier_factor(step: int, warmup: int, total: int) -> float:
    """The removed `LambdaLR` factor of `train.warmup_cosine` and `contrastive._schedule`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _lrs(warmup: int, total: int, lr: float = 1e-3) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = warmup_cosine(optimizer, warmup, total)
    out = []
    for _ in range(total):
        out.append(scheduler.get_last_lr()[0])
        assert optimizer.param_groups[0]["lr"] == out[-1]
        optimizer.step()
        scheduler.step()
    return out


@pytest.mark.parametrize(
    ("warmup", "total"), [(0, 1), (0, 7), (1, 1), (1, 10), (2, 3), (3, 10), (5, 5), (7, 4), (47, 941), (100, 4000)]
)
def test_lr_equals_the_earlier_schedule_at_every_step(warmup: int, total: int) -> None:
    lr = 1e-3
    new = _lrs(warmup, total, lr)
    old = [lr * _earlier_factor(step, warmup, total) for step in range(total)]
    # torch's schedulers update the lr recursively: equal up to rounding, not bit for bit
    assert new == pytest.approx(old, rel=1e-13, abs=1e-19)


def test_adamw_training_is_bit_identical_to_the_earlier_schedule() -> None:
    def train(schedule) -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Linear(16, 8)
        x, y = torch.randn(64, 16), torch.randn(64, 8)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        scheduler = schedule(optimizer)
        for step in range(300):
            rows = torch.arange(step * 8 % 64, step * 8 % 64 + 8)
            optimizer.zero_grad()
            ((model(x[rows]) - y[rows]) ** 2).mean().backward()
            optimizer.step()
            scheduler.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    earlier = train(lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: _earlier_factor(s, 15, 300)))
    assert torch.equal(train(lambda o: warmup_cosine(o, 15, 300)), earlier)


def test_negative_warmup_is_refused() -> None:
    with pytest.raises(ValueError, match="warm-up"):
        warmup_cosine(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), -1, 10)
