"""Cross-checks of the `compositional` config section that the schema cannot express."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taxvlm.config import ConfigError, Run, expand_experiments


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


COMP = "results/compositional"


def _faithful_on_dataset(section: Mapping[str, Any]) -> bool:
    contrastive = section["contrastive"]
    return "faithful" in contrastive["modes"] and contrastive["faithful"]["captions"] == "dataset"


def scored_paths(config: Mapping[str, Any], runs: list[Run]) -> dict[str, str]:
    """Model name → scored.tsv of every model scored on the dataset's hard negatives (the grid's
    VLMs, the open_clip models, the pipeline- and faithful-mode contrastive models)."""
    section = config["compositional"]
    contrastive = section["contrastive"]
    scored = {f"vlm/{run.path}": f"{COMP}/scored/vlm/{run.path}.tsv" for run in runs} if section["vlm"] else {}
    scored |= {f"open_clip/{c}": f"{COMP}/scored/open_clip/{c}.tsv" for c in sorted(section["open_clip"])}
    if "pipeline" in contrastive["modes"]:
        for run in pipeline_runs(config):
            for ablation in contrastive["ablations"]:
                scored[f"pipeline/{ablation}/{run.path}"] = f"{COMP}/pipeline/{run.path}/{ablation}/scored.tsv"
    if _faithful_on_dataset(section):
        model = contrastive["faithful"]["model"]
        for ablation in contrastive["ablations"]:
            scored[f"faithful/{ablation}/{model}"] = f"{COMP}/faithful/{model}/{ablation}/scored.tsv"
    return scored


def curve_paths(config: Mapping[str, Any], runs: list[Run]) -> dict[str, str]:
    """Model name → curve.tsv of every contrastive model trained with hard negatives (θ moves)."""
    return {
        name: path.removesuffix("scored.tsv") + "curve.tsv"
        for name, path in scored_paths(config, runs).items()
        if name.split("/")[0] in ("pipeline", "faithful") and name.split("/")[1] != "itc"
    }


def benchmark_paths(config: Mapping[str, Any], runs: list[Run]) -> dict[str, str]:
    """`benchmark/model` → scored.tsv of every benchmark × (open_clip model, faithful ablation, and with
    `vlm` every trained run of the grid)."""
    section = config["compositional"]
    contrastive = section["contrastive"]
    scored = {}
    for bench in sorted(section["benchmarks"]):
        if section["vlm"]:
            scored |= {f"{bench}/vlm/{run.path}": f"{COMP}/benchmarks/{bench}/vlm/{run.path}.tsv" for run in runs}
        for c in sorted(section["open_clip"]):
            scored[f"{bench}/open_clip/{c}"] = f"{COMP}/benchmarks/{bench}/open_clip/{c}.tsv"
        if "faithful" in contrastive["modes"]:
            for ablation in contrastive["ablations"]:
                scored[f"{bench}/faithful/{ablation}"] = f"{COMP}/benchmarks/{bench}/faithful/{ablation}.tsv"
    return scored


def compositional_outputs(config: Mapping[str, Any], analysis: str) -> list[str]:
    """What the `compositional` target (and, when enabled, the default target) builds."""
    section = config["compositional"]
    if not section["enabled"]:
        return []
    outputs = [f"{COMP}/accuracy.tsv", f"{analysis}/tables/compositional_accuracy.md"]
    outputs += [f"{analysis}/figures/compositional_{n}.png" for n in ("accuracy", "taxonomic", "thetas")]
    if section["benchmarks"]:
        outputs += [f"{COMP}/benchmark_accuracy.tsv", f"{analysis}/tables/compositional_benchmarks.md"]
    contrastive = section["contrastive"]
    if "faithful" in contrastive["modes"] and not _faithful_on_dataset(section):
        model = contrastive["faithful"]["model"]
        outputs += [f"{COMP}/faithful/{model}/{a}/model.pt" for a in contrastive["ablations"]]
    return outputs
