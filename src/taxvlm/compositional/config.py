"""Cross-checks of the `compositional` config section that the schema cannot express."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taxvlm.config import ConfigError, Run, expand_experiments


def check_compositional(config: Mapping[str, Any]) -> None:
    """Fail with the bad field named: the faithful mode's model and data, the pipeline mode's runs."""
    section = config.get("compositional", {})
    contrastive = section.get("contrastive", {})
    modes = contrastive.get("modes", ["pipeline"])
    if "faithful" in modes:
        faithful = contrastive.get("faithful", {})
        model = faithful.get("model")
        if model not in section.get("open_clip", {}):
            raise ConfigError(
                f"compositional.contrastive.faithful.model {model!r} is not a key of compositional.open_clip"
            )
        if faithful.get("captions", "dataset") == "coco":
            for key in ("coco_annotations", "coco_image_root"):
                if key not in faithful:
                    raise ConfigError(f"compositional.contrastive.faithful.{key} is required when captions is coco")
    if "pipeline" in modes and not pipeline_runs(config):
        selector = contrastive.get("pipeline", {}).get("runs", {})
        raise ConfigError(f"compositional.contrastive.pipeline.runs {selector} matches no run of experiments")


def pipeline_runs(config: Mapping[str, Any]) -> list[Run]:
    """The trained runs whose projector the pipeline mode starts from: those matching the selector
    (init, condition, shuffle), the lowest seed per (encoder, lm, objective)."""
    selector = {"init": "pretrained", "condition": "full", "shuffle": "original"}
    selector |= config.get("compositional", {}).get("contrastive", {}).get("pipeline", {}).get("runs", {})
    chosen: dict[tuple[str, str, str], Run] = {}
    for run in expand_experiments(config["experiments"]):
        if all(getattr(run, key) == value for key, value in selector.items()):
            chosen.setdefault((run.encoder, run.lm, run.objective), run)
    return sorted(chosen.values())
