"""Planning of the compositional stage (imported by the Snakefile only): the cross-checks of its config
section that the schema cannot express, and the trained runs its pipeline mode starts from. Its paths
are the rules' (`workflow/rules/common.smk`), like every stage's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taxvlm.config import Run, expand_experiments
from taxvlm.grid import ConfigError


def check_compositional(config: Mapping[str, Any]) -> None:
    """Fail with the bad field named (when enabled): WordNet's asset, the faithful mode's model and
    data, the pipeline mode's runs."""
    section = config["compositional"]
    if not section["enabled"]:
        return  # nothing of it is built
    asset = section["wordnet_asset"]
    if asset not in config["assets"]:
        raise ConfigError(f"compositional.wordnet_asset {asset!r} is not a key of assets")
    contrastive = section["contrastive"]
    modes = contrastive["modes"]
    if "faithful" in modes:
        faithful = contrastive["faithful"]
        model = faithful.get("model")
        if model not in section["open_clip"]:
            raise ConfigError(
                f"compositional.contrastive.faithful.model {model!r} is not a key of compositional.open_clip"
            )
        if faithful["captions"] == "coco":
            for key in ("coco_annotations", "coco_image_root"):
                if key not in faithful:
                    raise ConfigError(f"compositional.contrastive.faithful.{key} is required when captions is coco")
    if "pipeline" in modes and not pipeline_runs(config):
        selector = contrastive["pipeline"]["runs"]
        raise ConfigError(f"compositional.contrastive.pipeline.runs {selector} matches no run of experiments")


def pipeline_runs(config: Mapping[str, Any]) -> list[Run]:
    """The trained runs whose projector the pipeline mode starts from: those matching the selector
    (init, condition, shuffle), the lowest seed per (encoder, lm, objective)."""
    selector = config["compositional"]["contrastive"]["pipeline"]["runs"]
    chosen: dict[tuple[str, str, str], Run] = {}
    for run in expand_experiments(config["experiments"]):
        if all(getattr(run, key) == value for key, value in selector.items()):
            chosen.setdefault((run.encoder, run.lm, run.objective), run)
    return sorted(chosen.values())

