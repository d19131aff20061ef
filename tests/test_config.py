"""The experiment grid and config cross-checks shared by the workflow and the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from taxvlm.config import ConfigError, Run, check_references, expand_experiments, schema_error, training_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def default_config() -> dict:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def test_grid_is_the_sorted_union_of_blocks() -> None:
    block = {"encoders": ["e"], "lms": ["l"], "inits": ["pretrained"], "conditions": ["none", "full"],
             "shuffles": ["original"], "seeds": [7]}
    overlapping = {**block, "conditions": ["full"], "seeds": [7, 42]}
    runs = expand_experiments([block, overlapping])
    assert runs == sorted(runs)
    assert len(runs) == 3  # (none,7), (full,7), (full,42): (full,7) counted once
    assert {run.objective for run in runs} == {"yesno"}  # a block without `objectives` trains on questions
    run = Run("e", "l", "pretrained", "full", "original", "caption", 42)
    assert run.path == "e/l/pretrained/full/original/caption/seed42"
    assert run.keys()["objective"] == "caption"


def test_objectives_are_a_grid_dimension() -> None:
    block = {"encoders": ["e"], "lms": ["l"], "inits": ["pretrained"], "conditions": ["full"],
             "shuffles": ["original"], "objectives": ["yesno", "caption"], "seeds": [7]}
    assert [run.objective for run in expand_experiments([block])] == ["caption", "yesno"]
    bad = {**default_config(), "experiments": [{**block, "objectives": ["captions"]}]}
    assert "config.experiments[0].objectives[0]: 'captions' is not one of" in schema_error(bad, SCHEMA)


def merged(*names: str) -> dict:
    """config/config.yaml deep-merged with the named config files by Snakemake's own merge
    (`snakemake.utils.update_config`), as `--configfile` merges them."""
    config = default_config()
    for name in names:
        update_config(config, yaml.safe_load((REPO / "config" / name).read_text()))
    return config


@pytest.mark.parametrize("names", [("limber.yaml",), ("things.yaml", "limber.yaml"), ("limber_default.yaml",)])
def test_limber_configs_are_valid_caption_grids(names: tuple[str, ...]) -> None:
    config = merged(*names)
    assert schema_error(config, SCHEMA) is None
    check_references(config)
    runs = expand_experiments(config["experiments"])
    assert {run.objective for run in runs} == {"caption"}
    assert {run.init for run in runs} == {"pretrained", "random"}
    assert len({run.seed for run in runs}) >= 2  # seed CIs


def test_limber_config_has_limbers_encoders_and_token_counts() -> None:
    config = merged("limber.yaml")
    encoders = {run.encoder for run in expand_experiments(config["experiments"])}
    assert encoders == {"beit_l", "nf_resnet50", "clip_rn50x16"}
    assert config["training"]["projector"] == "linear" and config["training"]["prefix_tokens"] == 1
    specs = config["encoders"]
    assert specs["beit_l"]["id"].endswith("-pt22k")  # self-supervised only: no labels, no captions
    assert (specs["nf_resnet50"]["layer"], specs["nf_resnet50"]["features"]) == ("final", "pooled")
    assert (specs["clip_rn50x16"]["name"], specs["clip_rn50x16"]["id"]) == ("RN50x16", "openai")


def test_default_and_paper_configs_are_valid() -> None:
    config = default_config()
    assert schema_error(config, SCHEMA) is None
    check_references(config)
    things = merged("things.yaml")
    assert schema_error(things, SCHEMA) is None
    check_references(things)


def test_paper_config_keeps_the_paper_recipe_after_the_deep_merge() -> None:
    """Snakemake deep-merges things.yaml over the CPU default: keys it leaves out keep the default's
    values, so the CPU default's concept sample and feature standardisation must be undone there."""
    things = merged("things.yaml")
    assert things["dataset"]["kind"] == "things" and things["dataset"]["max_concepts"] is None
    assert "tuxpaint" in things["dataset"]  # a deep merge: the default's sections stay beside things'
    training = things["training"]
    assert (training["lr"], training["epochs"], training["feature_norm"]) == (1.0e-3, 5, "none")


def test_unknown_weights_asset_is_named() -> None:
    config = default_config()
    config["lms"]["smollm2_135m"]["weights"]["asset"] = "missing_asset"
    with pytest.raises(ConfigError, match=r"config.lms.smollm2_135m.weights.asset: 'missing_asset'"):
        check_references(config)


def test_unknown_dataset_asset_is_named() -> None:
    config = default_config()
    config["dataset"]["tuxpaint"]["asset"] = "nope"
    with pytest.raises(ConfigError, match=r"config.dataset.tuxpaint.asset: 'nope'"):
        check_references(config)


def test_lm_training_overrides_apply_to_that_lm_only() -> None:
    config = default_config()
    config["lms"]["other"] = {"source": "hf", "id": "x/y"}
    config["lms"]["smollm2_135m"]["training"] = {"lr": 0.5}
    assert training_config(config, "smollm2_135m")["lr"] == 0.5
    assert training_config(config, "other")["lr"] == config["training"]["lr"]


def test_conda_env_pins_match_requirements() -> None:
    pins = {
        line.split("==")[0].lower(): line.strip()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    env = yaml.safe_load((REPO / "envs/taxvlm.yaml").read_text())
    pip_section = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert pip_section, "envs/taxvlm.yaml has no pip pins"
    for pin in pip_section:
        assert pins.get(pin.split("==")[0].lower()) == pin, f"{pin} differs from requirements.txt"
