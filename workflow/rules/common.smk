import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

# The package lives in src/; jobs (local or on a cluster) inherit this environment.
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p
)

from taxvlm.config import (
    ConfigError,
    check_references,
    expand_experiments,
    schema_error,
    training_config,
)

SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
_problem = schema_error(config, SCHEMA)
if _problem:
    raise ConfigError(_problem)
validate(config, str(SCHEMA))
check_references(config)

RUNS = expand_experiments(config["experiments"])
ENCODERS = sorted({run.encoder for run in RUNS})
LMS = sorted({run.lm for run in RUNS})
CONDITION_SHUFFLES = sorted({(run.condition, run.shuffle) for run in RUNS})
DATA = "results/data"
GPU = config["compute"]["gpus_per_job"]


def _alternation(names):
    return "|".join(re.escape(name) for name in sorted(names)) or "^$"


wildcard_constraints:
    encoder=_alternation(config["encoders"]),
    lm=_alternation(config["lms"]),
    family="encoders|lms",
    name=_alternation([*config["encoders"], *config["lms"]]),
    init="pretrained|random",
    condition=r"none|full|random\d+(pair)?|systematic\d+",
    shuffle="original|across|within",
    seed=r"\d+",
    asset=_alternation(config["assets"]),


def package_sources(*modules):
    """Package files a rule runs, as inputs: Snakemake does not track imported modules.

    Snakemake compares checksums of small inputs, so touching a file reruns nothing while an
    edit reruns exactly the rules that use it.
    """
    paths = []
    for module in modules:
        path = SRC / "taxvlm" / module.replace(".", "/")
        paths.extend(
            sorted(map(str, path.rglob("*.py"))) if path.is_dir() else [f"{path}.py"]
        )
    return paths


def model_spec(family, name):
    return config[family][name]


def weights_dir(family, name):
    """The local folder a model loads from, or [] when it loads by hub name."""
    if model_spec(family, name).get("weights"):
        return f"resources/models/{family}/{name}"
    return []


def run_dir(run):
    return f"results/runs/{run.path}"


def final_outputs():
    return [
        "results/analysis/metrics.tsv",
        "results/analysis/headline.tsv",
        *(f"results/analysis/figures/{name}.png" for name in FIGURE_NAMES),
        *(f"results/analysis/tables/{name}.csv" for name in TABLE_NAMES),
        "results/analysis/textprobe_summary.tsv",
        "results/analysis/coherence.tsv",
        "results/analysis/mixed_effects.txt",
        f"{DATA}/taxonomy.png",
    ]
