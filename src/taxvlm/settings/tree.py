"""The whole configuration: every section, as validation leaves it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from taxvlm.settings.analysis import Analysis
from taxvlm.settings.assets import Assets
from taxvlm.settings.base import Section, section
from taxvlm.settings.compositional import Compositional
from taxvlm.settings.dataset import Conditions, Dataset, Questions, Shuffles, Split
from taxvlm.settings.evaluation import Compute, Evaluation
from taxvlm.settings.experiments import Block
from taxvlm.settings.models import EncoderSpec, LMSpec
from taxvlm.settings.probe import Probe
from taxvlm.settings.training import Training, TrainingOverrides
from taxvlm.settings.tuning import Tuning


class LM(LMSpec):
    """An `lms` entry: the LM and how it trains."""

    training: TrainingOverrides = section(
        TrainingOverrides,
        "this LM's own `training` settings over the global block (same keys and types; unknown keys are "
        "errors); changing them reruns only this LM's jobs. A preset sets them with `training.by_lm.<id>`",
    )


class Config(Section):
    """taxvlm workflow configuration (documented key by key in config/README.md)."""

    assets: Assets = section(Assets)
    dataset: Dataset
    split: Split = section(Split)
    questions: Questions = section(Questions)
    conditions: Conditions = section(Conditions)
    shuffles: Shuffles = section(Shuffles)
    encoders: Annotated[dict[str, EncoderSpec], Field(min_length=1)] = Field(
        description="frozen image encoders by id (registry ids resolved: `config/models/encoders.yaml`)"
    )
    lms: Annotated[dict[str, LM], Field(min_length=1)] = Field(
        description="frozen causal LMs by id (registry ids resolved: `config/models/lms.yaml`)"
    )
    training: Training = section(Training)
    evaluation: Evaluation = section(Evaluation)
    compute: Compute = section(Compute)
    tuning: Tuning
    analysis: Analysis = section(Analysis)
    compositional: Compositional = section(Compositional)
    probe: Probe = section(Probe)
    experiments: Annotated[list[Block], Field(min_length=1)]

    def model_families(self) -> dict[str, dict[str, EncoderSpec] | dict[str, LM]]:
        """The frozen models by family (`encoders`, `lms`), as config paths name them."""
        return {"encoders": self.encoders, "lms": self.lms}
