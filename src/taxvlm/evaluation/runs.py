"""Loading a trained run for the stages after training (evaluation, naming, captioning, probing):
its projector, checked against the run it is asked for, the frozen LM it was trained through and the
features it reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from taxvlm.features import load_features
from taxvlm.io import load_pt
from taxvlm.models.lms import load_lm
from taxvlm.models.projector import build_projector
from taxvlm.specs import TrainedRun


def load_projector(path: Path, init: str, seed: int, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The trained projector in eval mode and its spec; fails if it was trained for another init/seed
    (the rule's wildcards and the file would then describe different runs)."""
    ckpt = load_pt(path)
    if (ckpt["init"], ckpt["seed"]) != (init, seed):
        raise ValueError(
            f"{path} was trained with init={ckpt['init']} seed={ckpt['seed']}, not init={init} seed={seed}"
        )
    projector = build_projector(ckpt["spec"], ckpt["d_vis"], ckpt["d_lm"])
    projector.load_state_dict(ckpt["state_dict"])
    return projector.to(device).eval(), ckpt["spec"]


@dataclass
class LoadedRun:
    """A run ready to score: the features its projector reads, image id → feature row, the LM and
    tokenizer, and the projector in eval mode."""

    feats: torch.Tensor
    index: dict[str, int]
    model: nn.Module
    tokenizer: Any
    projector: nn.Module


def load_run(run: TrainedRun, device: torch.device) -> LoadedRun:
    """Load everything scoring one run needs, on `device`."""
    projector, spec = load_projector(run.projector, run.lm.init, run.seed, device)
    data = load_features(run.features)
    index = {image_id: i for i, image_id in enumerate(data["image_ids"])}
    model, tokenizer = load_lm(run.lm, device)
    return LoadedRun(data[spec["features"]], index, model, tokenizer, projector)
