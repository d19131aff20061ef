"""Specs for tests, built the way the workflow builds them: the schema's defaults filled in, then
the typed section (`taxvlm.settings`), so a test never states a default of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from snakemake.utils import update_config, validate

from taxvlm.grid import run_settings
from taxvlm.presets import resolve_preset
from taxvlm.settings.models import EncoderSpec, LMSpec
from taxvlm.settings.schema import fill_defaults
from taxvlm.settings.training import TrainingSpec
from taxvlm.settings.tree import Config
from taxvlm.specs import FrozenLM, TrainedRun, TrainingSetup


def lm_spec(**keys: Any) -> LMSpec:
    """An `lms` entry with its defaults, without its `training` block (as planning's `lm_spec` splits it)."""
    entry = fill_defaults({"source": "hf", **keys}, "lms", "*")
    return LMSpec.from_config({key: value for key, value in entry.items() if key != "training"})


def frozen_lm(weights_dir: Path | None, init: str = "pretrained", **keys: Any) -> FrozenLM:
    return FrozenLM(lm_spec(**keys), weights_dir, init)


def encoder_spec(**keys: Any) -> EncoderSpec:
    return EncoderSpec.from_config(fill_defaults({"source": "timm", "layer": -2, **keys}, "encoders", "*"))


def training_spec(**keys: Any) -> TrainingSpec:
    """`keys` over the schema's defaults, unvalidated: tests also train for `epochs: 0` (the untrained
    baseline) or keep no resume state (`checkpoint_every: 0`), which a config may not ask for, so the
    section is constructed without its checks (`model_construct`), its record the mapping given."""
    mapping = {**run_settings(fill_defaults({}, "training")), **keys}
    spec = TrainingSpec.model_construct(**mapping)
    spec._record = mapping
    return spec


def training_setup(
    lm_dir: Path, training: dict[str, Any], encoder: dict[str, Any], init: str = "pretrained", objective: str = "yesno"
) -> TrainingSetup:
    return TrainingSetup(frozen_lm(lm_dir, init), encoder_spec(**encoder), training_spec(**training), objective)


def trained_run(lm_dir: Path, run_dir: Path, features: Path, seed: int, init: str = "pretrained") -> TrainedRun:
    return TrainedRun(frozen_lm(lm_dir, init), seed, run_dir / "projector.pt", features)


def section(value: dict[str, Any], *path: str) -> Any:
    """A config section as a job types it: `value` with the schema's defaults, as the tree's class of
    the section at `path` (e.g. `("analysis", "textprobe")`)."""
    model: Any = Config
    for step in path:
        model = model.model_fields[step].annotation
    return model.from_config(fill_defaults(value, *path), f"config.{'.'.join(path)}")


REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def validated(config: dict[str, Any]) -> dict[str, Any]:
    """A whole config as `workflow/rules/common.smk` leaves it: validated by Snakemake, which fills the
    schema's defaults."""
    validate(config, str(SCHEMA))
    return config


def preset(*files: str, root: Path = REPO) -> dict[str, Any]:
    """The config of `snakemake --configfile files...` (paths relative to `root`) before validation: the
    files deep-merged by Snakemake's own merge, then resolved as common.smk resolves them (the dataset's
    declaration under the preset, the models from the registry)."""
    config: dict[str, Any] = {}
    for name in files:
        update_config(config, yaml.safe_load((root / name).read_text()) or {})
    resolve_preset(config, REPO / "config")
    return config


# The `folder` dataset as build_dataset receives it; the section's paths reach it resolved, as `inputs`.
FOLDER_DATASET = section({"kind": "folder", "folder": {"images": "images", "hypernyms": "hypernyms.tsv"}}, "dataset")


def things_dataset(leaf_set: str) -> Any:
    """The `things` dataset as build_dataset receives it (its files reach it resolved, as `inputs`)."""
    files = {"images_assets": ["things_images"], "categories": "categories.tsv", "pairs": "pairs.tsv"}
    return section({"kind": "things", "things": {**files, "leaf_set": leaf_set}}, "dataset")
