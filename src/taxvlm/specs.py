"""The records jobs build from their rule's params: which frozen LM a job loads, what a training
shares, what a trained run's files are. Their settings are sections of the settings tree
(`taxvlm.settings`), so each key's type and default is written once, there.

A section keeps the mapping it was built from (`record()`): what `train_config.json`, the
checkpoint fingerprint and the feature cache record, so typing the settings changes no output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taxvlm.settings.models import EncoderSpec, LMSpec
from taxvlm.settings.training import TrainingSpec


@dataclass(frozen=True)
class FrozenLM:
    """Which frozen LM a job loads: its spec, its local weights folder (None: by hub id) and its init
    (`pretrained`, or `random`: the twin drawn from `spec.random_init_seed`)."""

    spec: LMSpec
    weights_dir: Path | None
    init: str

    @classmethod
    def from_config(cls, lm: Mapping[str, Any], weights_dir: str | Path | None, init: str) -> FrozenLM:
        """From a rule's `lm` param, its optional `lm_weights` input (`[]`/`''` when the LM loads by hub
        id) and the run's init."""
        return cls(LMSpec.from_config(lm, "lm"), Path(weights_dir) if weights_dir else None, init)


@dataclass(frozen=True)
class TrainedRun:
    """A trained run as the later stages load it: its frozen LM, the seed its projector.pt must carry,
    and its projector and feature files (`taxvlm.evaluation.runs.load_run`)."""

    lm: FrozenLM
    seed: int
    projector: Path
    features: Path


@dataclass(frozen=True)
class TrainingSetup:
    """What a projector training is, apart from its rows, seed and files: the settings every run of a
    fused group shares (`taxvlm.training.loop.train_projectors`)."""

    lm: FrozenLM
    encoder: EncoderSpec
    training: TrainingSpec
    objective: str

    @classmethod
    def from_config(
        cls,
        *,
        lm: Mapping[str, Any],
        lm_weights: str | Path | None,
        init: str,
        encoder: Mapping[str, Any],
        training: Mapping[str, Any],
        objective: str,
    ) -> TrainingSetup:
        """From a training rule's params (`lm`, `encoder`, `training`), its optional `lm_weights` input
        and the run's init and objective."""
        return cls(
            FrozenLM.from_config(lm, lm_weights, init),
            EncoderSpec.from_config(encoder, "encoder"),
            TrainingSpec.from_config(training, "training"),
            objective,
        )

    def projector(self) -> dict[str, Any]:
        """The projector's architecture (stored in projector.pt, `taxvlm.models.projector.build_projector`)."""
        return {
            "projector": self.training.projector,
            "prefix_tokens": self.training.prefix_tokens,
            "features": self.encoder.features,
            "feature_norm": self.training.feature_norm,
        }


def trained_run(
    lm: Mapping[str, Any],
    lm_weights: str | Path | None,
    keys: Mapping[str, Any],
    projector: str | Path,
    features: str | Path,
) -> TrainedRun:
    """From a later stage's rule: its `lm` param, optional `lm_weights` input, the run's keys (its
    wildcards: `init`, `seed`), and its projector and feature files."""
    frozen = FrozenLM.from_config(lm, lm_weights, keys["init"])
    return TrainedRun(frozen, int(keys["seed"]), Path(projector), Path(features))
