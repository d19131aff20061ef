"""Planning of the compositional stage (imported by the Snakefile only): the cross-checks of its config
section that the schema cannot express, and the trained runs its pipeline mode starts from. Its paths
are the rules' (`workflow/rules/common.smk`), like every stage's."""

from __future__ import annotations

from taxvlm.config import Run
from taxvlm.grid import ConfigError
from taxvlm.settings.tree import Config


def check_compositional(settings: Config, runs: list[Run]) -> None:
    """Fail with the bad field named (when enabled): WordNet's asset, the faithful mode's model and
    data, the pipeline mode's runs (among the grid's `runs`)."""
    section = settings.compositional
    if not section.enabled:
        return  # nothing of it is built
    asset = section.wordnet_asset
    if asset not in settings.assets.model_extra:
        raise ConfigError(f"compositional.wordnet_asset {asset!r} is not a key of assets")
    contrastive = section.contrastive
    if "faithful" in contrastive.modes:
        faithful = contrastive.faithful
        if faithful.model not in section.open_clip:
            raise ConfigError(
                f"compositional.contrastive.faithful.model {faithful.model!r} is not a key of compositional.open_clip"
            )
        if faithful.captions == "coco":
            for key in ("coco_annotations", "coco_image_root"):
                if getattr(faithful, key) is None:
                    raise ConfigError(f"compositional.contrastive.faithful.{key} is required when captions is coco")
    if "pipeline" in contrastive.modes and not pipeline_runs(settings, runs):
        selector = contrastive.pipeline.runs.model_dump()
        raise ConfigError(f"compositional.contrastive.pipeline.runs {selector} matches no run of experiments")


def pipeline_runs(settings: Config, runs: list[Run]) -> list[Run]:
    """The trained runs whose projector the pipeline mode starts from: those of the grid's sorted `runs`
    matching the selector (init, condition, shuffle), the lowest seed per (encoder, lm, objective)."""
    selector = settings.compositional.contrastive.pipeline.runs.model_dump()
    chosen: dict[tuple[str, str, str], Run] = {}
    for run in runs:
        if all(getattr(run, key) == value for key, value in selector.items()):
            chosen.setdefault((run.encoder, run.lm, run.objective), run)
    return sorted(chosen.values())
