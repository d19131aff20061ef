"""The resume state of a training run: written every `checkpoint_every` steps, restarted from.

Not the kept points (`taxvlm.training.kept_points`), which are results: the resume state is transient,
deleted when the run ends, and restarted from only when it belongs to the same run (its fingerprint).

Reproducibility: the projector init comes from `derive_seed(seed, "projector")`; the data order of
epoch e from `rng(seed, "order", e)` (`epoch_order`; stateless, so a resumed run sees the same order); nothing
else is random (LM in eval mode, no dropout). A resumed run therefore ends bit-identical to an
uninterrupted one on the same machine and thread count.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from taxvlm.io import save_pt, sha256_file

log = logging.getLogger(__name__)


@dataclass
class History:
    """What a run has done so far: its step and curves, and the points it kept."""

    step: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    val_curve: list[dict[str, Any]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)


def fingerprint(config: dict[str, Any], train_tsv: Path, n_images: int) -> str:
    """What a resume state must match to be restarted from: the run config, the training table, the
    feature count and the scheduler's kind (a state of the earlier `LambdaLR` schedule holds another)."""
    blob = json.dumps([config, sha256_file(train_tsv), n_images, "SequentialLR"], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def save_resume_state(
    path: Path, fingerprint: str, history: History, projector: nn.Module, optimizer: Any, scheduler: Any
) -> None:
    """Everything `load_resume_state` needs to continue the run bit-identically, written atomically."""
    state = {
        "fingerprint": fingerprint,
        "step": history.step,
        "projector": projector.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "curve": history.curve,
        "val_curve": history.val_curve,
        "kept": history.kept,
    }
    save_pt(state, path)


def load_resume_state(
    path: Path, fingerprint: str, projector: nn.Module, optimizer: Any, scheduler: Any, dev: torch.device
) -> History:
    """Load a matching resume state into the training state; a fresh history without one."""
    if not path.exists():
        return History()
    state = torch.load(path, map_location=dev, weights_only=True)
    if state["fingerprint"] != fingerprint:
        log.warning("ignoring %s: it belongs to another run configuration", path)
        return History()
    projector.load_state_dict(state["projector"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    log.info("resumed from %s at step %d", path, state["step"])
    return History(state["step"], state["curve"], state["val_curve"], state["kept"])
