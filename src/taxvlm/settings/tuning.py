"""`tuning`: how training length and learning rate are chosen, on the validation split and the
trained task only (`snakemake tune`, `taxvlm.tune`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from taxvlm.settings.base import Section, optional
from taxvlm.settings.training import FeatureNorm


class Candidate(Section):
    """One setting tried; every other setting as the grid's runs of that objective and init get."""

    lr: float = Field(gt=0, description="the learning rate tried")
    feature_norm: FeatureNorm = Field("none", description="the feature normalisation tried (`training.feature_norm`)")


Candidates = Annotated[list[Candidate], Field(min_length=1)]


class Target(Section):
    """What is tuned, each separately."""

    encoder: str = Field(description="an encoder of `encoders`")
    objective: Literal["yesno", "caption"] = Field(
        description="`yesno`: judged on the validation leaf questions; `caption`: on validation leaf naming"
    )
    init: Literal["pretrained", "random"] = Field(description="the twin may need another lr or length")
    candidates: Candidates | None = optional(
        description="this target's own candidates instead of the shared ones (a grid extended for it alone)"
    )


class Tuning(Section):
    """`snakemake tune`: candidates trained on `condition` (no hypernym in training under `full`) for
    every target, judged on the validation leaves under the objective's readout (`docs/tuning.md` is the
    report; see `taxvlm.tune` for the selection rule). Where an objective × init has several encoders,
    the one whose best validation score is highest is chosen."""

    lm: str = Field(description="an LM of `lms`")
    targets: list[Target] = Field(min_length=1, description="what is tuned, each separately")
    condition: str = Field("full", description="the condition the candidates train on")
    seed: int = Field(7, description="the candidates' training seed")
    epochs: float = Field(
        6, gt=0, description="epochs each candidate trains, scored on the validation leaves after each"
    )
    tolerance: float = Field(
        0.02,
        ge=0,
        description="the best candidate (best validation accuracy at any epoch; ties: the smaller lr) trains for the "
        "first epoch whose validation accuracy is within `tolerance` of that best",
    )
    candidates: Candidates = Field(description="the settings every target tries (unless it has its own)")
