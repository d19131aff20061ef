import os
import re
import sys
from pathlib import Path, PurePosixPath

from snakemake.utils import validate

# The package lives in src/. Jobs import it through workflow/scripts/taxvlm (a link to it), since
# Snakemake puts the scripts folder on the path of every script job, whatever its environment.
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))

from taxvlm.analysis.names import FIGURE_NAMES, TABLE_NAMES
from taxvlm.placement import gpu_job_resources, host_mem_mb, model_billions, runtime_min
from taxvlm.provenance import config_fingerprint
from taxvlm.sources import script_sources
from taxvlm.tune import candidate_name, tuning_plan
from taxvlm.grid import OBJECTIVES, ConfigError
from taxvlm.config import (
    RUN_PATH,
    check_references,
    check_twins,
    expand_experiments,
    fuse_memory_gib,
    fused_groups,
    schema_error,
    training_config,
    unpinned_models,
)
from taxvlm.assets.lock import asset_entries, check_pins, unpinned_report
from taxvlm.compositional.config import check_compositional, pipeline_runs
from taxvlm.presets import resolve_preset
from taxvlm.settings.tree import Config

SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
resolve_preset(config, Path(workflow.basedir) / "config")
_problem = schema_error(config, SCHEMA)
if _problem:
    raise ConfigError(_problem)
validate(config, str(SCHEMA))
# The typed view of the validated config (`taxvlm.settings.tree`): what planning reads as values.
# Params stay the mappings as written, so that typing them reruns nothing.
SETTINGS = Config.from_config(config)
check_references(SETTINGS)
CONFIG_FINGERPRINT = config_fingerprint(config)
check_pins(config["assets"])
if unpinned_report(config["assets"]):
    print(unpinned_report(config["assets"]), file=sys.stderr)
if unpinned_models(SETTINGS):
    print(
        "warning: hub models without a pinned `revision` (what was loaded is recorded in "
        f"train_config.json): {', '.join(unpinned_models(SETTINGS))}",
        file=sys.stderr,
    )

RUNS = expand_experiments(config["experiments"])
check_twins(RUNS, SETTINGS.analysis.require_twin)
check_compositional(SETTINGS, RUNS)
FUSED_GROUPS = fused_groups(config)
YESNO_RUNS = [run for run in RUNS if run.objective == "yesno"]
ENCODERS = sorted({run.encoder for run in RUNS})
LMS = sorted({run.lm for run in RUNS})
CONDITION_SHUFFLES = sorted({(run.condition, run.shuffle) for run in RUNS})
DATA = "results/data"
FEATURES = "results/features/{encoder}.pt"
CONDITION_DIR = "results/conditions/{condition}/{shuffle}"
RUN = RUN_PATH
RUN_DIR = f"results/runs/{RUN}"
YESNO_RUN = RUN.replace("{objective}", "yesno")
YESNO_RUN_DIR = f"results/runs/{YESNO_RUN}"
GPU = SETTINGS.compute.gpus_per_job


def _alternation(names):
    return "|".join(re.escape(name) for name in sorted(names)) or "^$"


def script_code(script):
    """The package files a script runs (its `taxvlm` imports, transitively), as rule inputs.

    Snakemake tracks a rule's script but not the modules it imports. Paths are relative so a moved
    copy of the project reruns nothing; Snakemake compares checksums of small inputs, so touching a
    file reruns nothing while an edit reruns exactly the rules that execute it.
    """
    script_path = Path(workflow.basedir) / "workflow" / "scripts" / script
    return [os.path.relpath(path) for path in script_sources(SRC, script_path)]


def lm_spec(name):
    """An LM's spec without its training overrides (those reach training via training_config)."""
    return {
        key: value for key, value in config["lms"][name].items() if key != "training"
    }


def _job_model_billions(wildcards, lm):
    """Size of the model a GPU job loads: its LM (given, or the `lm` wildcard), else its encoder."""
    name = lm or wildcards.get("lm")
    if name:
        return model_billions(config["lms"][name], name)
    encoder = wildcards.get("encoder")
    if encoder:
        return model_billions(config["encoders"][encoder], encoder)
    return model_billions(None)


def gpu_job(kind, lm=None, members=1):
    """Resources of a GPU step (one on a GPU when compute.gpus_per_job > 0; taxvlm.placement): the
    one GPU request, the GPU partition (site values from the environment), host memory and runtime from
    the job's model (and its attempt); threads give the CPUs. With gpus_per_job 0: only gpu=0.
    """
    resources = gpu_job_resources(GPU, kind, model_billions(None), os.environ, members)
    if GPU:
        resources["mem_mb"] = lambda wildcards: host_mem_mb(
            _job_model_billions(wildcards, lm)
        )
        resources["runtime"] = lambda wildcards, attempt: runtime_min(
            kind, _job_model_billions(wildcards, lm), members, attempt
        )
    return resources


def model_spec(family, name):
    return config[family][name]


def weights_dir(family, name):
    """The local folder a model loads from: its converted `weights`, or the hub snapshot that
    prefetch_model fetches (so no job loads from the hub)."""
    if model_spec(family, name).get("weights"):
        return f"resources/models/{family}/{name}"
    return f"resources/hub/{family}/{name}"


def hub_identity(family, name):
    """What fetching a hub model depends on, and only that: editing a model's other settings (its
    layer, an LM's training block) must not fetch it again and rerun every job that loads it.
    """
    spec = model_spec(family, name)
    return {key: spec.get(key) for key in ("source", "name", "id", "revision")}


def run_dir(run):
    return RUN_DIR.format(**run.keys())


def condition_dir(run):
    return CONDITION_DIR.format(condition=run.condition, shuffle=run.shuffle)


def metric_sources():
    """(run keys + readout, results file) of every table the metrics are computed from: the yes/no
    predictions of runs trained on questions, and the naming of every run (evaluation.naming).
    """
    sources = [
        (run.keys() | {"readout": "yesno"}, f"{run_dir(run)}/predictions.tsv")
        for run in YESNO_RUNS
    ]
    if SETTINGS.evaluation.naming:
        sources += [
            (run.keys() | {"readout": "naming"}, f"{run_dir(run)}/naming.tsv")
            for run in RUNS
        ]
    if not sources:
        raise ConfigError(
            "config.evaluation.naming: false leaves no metrics for a grid without yesno runs"
        )
    return sources


METRIC_SOURCES = metric_sources()


def final_outputs():
    return [
        "results/analysis/answer.txt",
        "results/analysis/provenance.json",
        "results/analysis/contrasts.tsv",
        "results/analysis/metrics.tsv",
        "results/analysis/headline.tsv",
        *(f"results/analysis/figures/{name}.png" for name in FIGURE_NAMES),
        *(f"results/analysis/tables/{name}.csv" for name in TABLE_NAMES),
        # outputs that nothing downstream reads are rebuilt only when requested: without these, a deleted
        # answer figure or markdown table stayed missing (found by tests/test_faults.py)
        "results/analysis/figures/answer.png",
        "results/analysis/tables/answer.csv",
        "results/analysis/tables/answer.md",
        *(f"results/analysis/tables/{name}.md" for name in TABLE_NAMES),
        *TEXTPROBE_SUMMARY,
        "results/analysis/coherence.tsv",
        "results/analysis/dynamics.txt",
        *(["results/analysis/mixed_effects.txt"] if YESNO_RUNS else []),
        f"{DATA}/taxonomy.png",
    ]


def dataset_asset(key):
    section = config["dataset"][config["dataset"]["kind"]]
    return f"resources/downloads/{section[key]}"


def convert_sources(wildcards):
    """The downloaded packages a model's weights are converted from (none for tiny models)."""
    assets = model_spec(wildcards.family, wildcards.name)["weights"].get("asset", [])
    names = [assets] if isinstance(assets, str) else assets
    return (
        {"sources": [f"resources/downloads/{name}" for name in names]} if names else {}
    )


def user_file(path):
    """A file the config names (the user's data, never a rule's output): as given when it exists
    in the working directory, else the same relative path under the workflow's folder. So the tiny
    configuration, which names `.test/data/...`, runs from the repository root
    (`--configfile .test/config/config.yaml`) and under `--directory .test` alike.
    """
    if os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = Path(workflow.basedir) / path
    return os.path.relpath(candidate) if candidate.exists() else path


def dataset_inputs(wildcards):
    """The prepared inputs of the configured dataset kind, by the names build_dataset expects."""
    kind = config["dataset"]["kind"]
    section = config["dataset"][kind]
    if kind == "tuxpaint":
        return {"stamps": "resources/tuxpaint", "nltk_data": "resources/nltk_data"}
    if kind == "things":
        inputs = {
            "images": "resources/things/images",
            "categories": user_file(section["categories"]),
            "pairs": user_file(section["pairs"]),
        }
    else:
        inputs = {
            "images": user_file(section["images"]),
            "hypernyms": user_file(section["hypernyms"]),
        }
    for key in ("hypernym_forms", "captions"):
        if key in section:
            inputs[key] = user_file(section[key])
    return inputs


ANALYSIS = "results/analysis"
TEXTPROBE_LMS = config["analysis"]["textprobe"].get("lms", LMS)
# the combined text-probe table where any LM is probed (its readers take none: a placeholder)
TEXTPROBE_SUMMARY = [f"{ANALYSIS}/textprobe_summary.tsv"] if TEXTPROBE_LMS else []
# The VLM's readouts with the leaf named in text where the image goes: every LM of the grid's runs
# and its random-init twin (what the contrasts read them as, and the file).
UPPER_BOUND = f"{ANALYSIS}/upper_bound/{{lm}}/{{init}}.tsv"
UPPER_BOUND_SOURCES = [
    ({"lm": lm, "init": init}, UPPER_BOUND.format(lm=lm, init=init))
    for lm in LMS
    for init in ("pretrained", "random")
]


def first_condition(shuffle):
    """Coherence depends only on the shuffle: any materialised condition carries its map."""
    return min(cond for cond, shuf in CONDITION_SHUFFLES if shuf == shuffle)


SHUFFLES = sorted({shuffle for _, shuffle in CONDITION_SHUFFLES})


def tuning_training(objective, init, candidate):
    """config.training of the tuned LM for one objective and init, with one tuning candidate's
    settings, the tuning's length and a validation scoring after every epoch."""
    tuning = config["tuning"]
    by_name = {
        candidate_name(c): c
        for _, c in tuning_plan(tuning["targets"], tuning["candidates"])
    }
    return (
        training_config(config, config["tuning"]["lm"], objective, init)
        | by_name[candidate]
        | {
            "epochs": config["tuning"]["epochs"],
            "val_every": 1,
        }
    )


TRAIN_TABLES = {"yesno": "train.tsv", "caption": "train_captions.tsv"}


def fused_inputs(group):
    """The inputs of a fused group's training job (train_projector's, one per member)."""
    run = group.runs[0]
    return {
        "features": FEATURES.format(encoder=run.encoder),
        "train": [
            f"{condition_dir(r)}/{TRAIN_TABLES[r.objective]}" for r in group.runs
        ],
        "val": [f"{condition_dir(r)}/val_leaf.tsv" for r in group.runs],
        "concepts": f"{DATA}/concepts.tsv",
        "lm_weights": weights_dir("lms", run.lm),
        "code": script_code("train_fused.py"),
    }


def fused_outputs(group, name):
    """One of train_projector's outputs, for every member of a fused group."""
    return [f"{run_dir(r)}/{name}" for r in group.runs]


# The compositional stage (config.compositional): its rules (compositional.smk) are included only when
# it is enabled; its paths, like every stage's, are here.
COMP = "results/compositional"
COMP_SECTION = config["compositional"]


def _faithful_on_dataset():
    contrastive = COMP_SECTION["contrastive"]
    return (
        "faithful" in contrastive["modes"]
        and contrastive["faithful"]["captions"] == "dataset"
    )


def compositional_scored():
    """Model name -> scored.tsv of every model scored on the dataset's hard negatives (the grid's
    VLMs, the open_clip models, the pipeline- and faithful-mode contrastive models)."""
    contrastive = COMP_SECTION["contrastive"]
    scored = {}
    if COMP_SECTION["vlm"]:
        scored |= {
            f"vlm/{run.path}": f"{COMP}/scored/vlm/{run.path}.tsv" for run in RUNS
        }
    for clip in sorted(COMP_SECTION["open_clip"]):
        scored[f"open_clip/{clip}"] = f"{COMP}/scored/open_clip/{clip}.tsv"
    if "pipeline" in contrastive["modes"]:
        for run in pipeline_runs(SETTINGS, RUNS):
            for ablation in contrastive["ablations"]:
                scored[f"pipeline/{ablation}/{run.path}"] = (
                    f"{COMP}/pipeline/{run.path}/{ablation}/scored.tsv"
                )
    if _faithful_on_dataset():
        model = contrastive["faithful"]["model"]
        for ablation in contrastive["ablations"]:
            scored[f"faithful/{ablation}/{model}"] = (
                f"{COMP}/faithful/{model}/{ablation}/scored.tsv"
            )
    return scored


def compositional_curves(scored):
    """Model name -> curve.tsv of every contrastive model among `scored` (compositional_scored())
    trained with hard negatives (θ moves)."""
    return {
        name: path.removesuffix("scored.tsv") + "curve.tsv"
        for name, path in scored.items()
        if PurePosixPath(name).parts[0] in ("pipeline", "faithful")
        and PurePosixPath(name).parts[1] != "itc"
    }


def compositional_benchmark_scored():
    """`benchmark/model` -> scored.tsv of every benchmark x (open_clip model, faithful ablation, and
    with `vlm` every trained run of the grid)."""
    contrastive = COMP_SECTION["contrastive"]
    scored = {}
    for bench in sorted(COMP_SECTION["benchmarks"]):
        if COMP_SECTION["vlm"]:
            scored |= {
                f"{bench}/vlm/{run.path}": f"{COMP}/benchmarks/{bench}/vlm/{run.path}.tsv"
                for run in RUNS
            }
        for clip in sorted(COMP_SECTION["open_clip"]):
            scored[f"{bench}/open_clip/{clip}"] = (
                f"{COMP}/benchmarks/{bench}/open_clip/{clip}.tsv"
            )
        if "faithful" in contrastive["modes"]:
            for ablation in contrastive["ablations"]:
                scored[f"{bench}/faithful/{ablation}"] = (
                    f"{COMP}/benchmarks/{bench}/faithful/{ablation}.tsv"
                )
    return scored


def compositional_outputs():
    """What the `compositional` target (and, when enabled, the default target) builds."""
    if not COMP_SECTION["enabled"]:
        return []
    outputs = [f"{COMP}/accuracy.tsv", f"{ANALYSIS}/tables/compositional_accuracy.md"]
    outputs += [
        f"{ANALYSIS}/figures/compositional_{name}.png"
        for name in ("accuracy", "taxonomic", "thetas")
    ]
    if COMP_SECTION["benchmarks"]:
        outputs += [
            f"{COMP}/benchmark_accuracy.tsv",
            f"{ANALYSIS}/tables/compositional_benchmarks.md",
        ]
    contrastive = COMP_SECTION["contrastive"]
    if "faithful" in contrastive["modes"] and not _faithful_on_dataset():
        model = contrastive["faithful"]["model"]
        outputs += [
            f"{COMP}/faithful/{model}/{a}/model.pt" for a in contrastive["ablations"]
        ]
    return outputs
