"""The projector states kept along training, for the evaluation to score (`checkpoints.pt`).

Kept points (`training.eval_every`, in `eval_every_unit`s: epochs or steps): the projector's state at
those steps and at the last one is kept in `checkpoints.pt`, which the evaluation scores to follow the
readouts along training (`taxvlm.evaluation.readouts`). The kept steps follow from the config alone, never from
a score, so no point is ever picked by a result; the last one is the run's projector.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def steps_every(every: float, unit: str, steps_per_epoch: int, total: int) -> set[int]:
    """Training steps after which something is scored or kept: every `every` epochs or steps (`unit`)
    and the last step; `every` 0 means only the last step. Validation with a curve also scores step 0."""
    if unit not in ("epochs", "steps"):
        raise ValueError(f"a training interval unit is {unit!r}; expected 'epochs' or 'steps'")
    if every <= 0:
        return {total}
    interval = max(1, round(every * (steps_per_epoch if unit == "epochs" else 1)))
    return {*range(interval, total + 1, interval), total}


def kept_point(projector: nn.Module, step: int, steps_per_epoch: int) -> dict[str, Any]:
    """A copy of the projector's state after `step` (CPU tensors: the training keeps updating its own)."""
    state = {name: tensor.detach().cpu().clone() for name, tensor in projector.state_dict().items()}
    return {"step": step, "epoch": step / steps_per_epoch, "state_dict": state}
