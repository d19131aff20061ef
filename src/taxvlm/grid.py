"""The words planning and jobs share: the config error, the objectives, and which training keys are
scheduling rather than a run's settings.

Planning (`taxvlm.config`: the grid, fused groups, cross-checks, warnings) is imported by the Snakefile
only; jobs import this module instead. Rules list the modules their script imports as inputs, so
keeping planning out of every job's imports means editing it reruns no job: what planning decides
reaches jobs as wildcards and params, which Snakemake tracks (`tests/test_sources.py` checks it).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


class ConfigError(ValueError):
    """A config problem, reported as one line naming the field."""


OBJECTIVES: tuple[str, ...] = ("yesno", "caption")

# Training keys that say how runs are scheduled, not what a run is: never part of a run's identity.
SCHEDULING_KEYS: tuple[str, ...] = ("fuse", "fuse_memory_gib")
# Training keys that are no run's setting: the scheduling keys, and the per-objective/init overrides
# that `taxvlm.config.training_config` resolves into the settings.
NOT_RUN_SETTINGS: tuple[str, ...] = (*SCHEDULING_KEYS, "overrides")


def run_settings(training: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved `training` block's settings of one run (what `taxvlm.specs.TrainingSpec` takes): the
    block without the keys that are no run's setting. The one place they are dropped."""
    return {key: copy.deepcopy(value) for key, value in training.items() if key not in NOT_RUN_SETTINGS}
