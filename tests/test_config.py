"""The experiment grid and config cross-checks shared by the workflow and the tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from taxvlm.config import (
    Run,
    check_references,
    expand_experiments,
    fuse_limit,
    fuse_memory_gib,
    fused_groups,
    schema_error,
    training_config,
)
from taxvlm.data.datasets import build_dataset
from taxvlm.grid import ConfigError
from taxvlm.settings.schema import fill_defaults
from taxvlm.settings.tree import Config

from spec_builders import preset, validated

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def default_config() -> dict:
    return validated(preset("config/config.yaml"))


def test_grid_is_the_sorted_union_of_blocks() -> None:
    block = {"encoders": ["e"], "lms": ["l"], "inits": ["pretrained"], "conditions": ["none", "full"],
             "shuffles": ["original"], "seeds": [7]}
    overlapping = {**block, "conditions": ["full"], "seeds": [7, 42]}
    runs = expand_experiments(fill_defaults([block, overlapping], "experiments"))
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
    """The validated config of `--configfile config/<name>...` (the first a preset, the rest overlays)."""
    return validated(preset(*(f"config/{name}" for name in names)))


@pytest.mark.parametrize(
    "names", [("limber.yaml",), ("limber.yaml", "datasets/things.yaml"), ("config.yaml", "limber_default.yaml")]
)
def test_limber_configs_are_valid_caption_grids(names: tuple[str, ...]) -> None:
    config = merged(*names)
    assert schema_error(config, SCHEMA) is None
    check_references(Config.from_config(config))
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
    check_references(Config.from_config(config))
    things = merged("things.yaml")
    assert schema_error(things, SCHEMA) is None
    check_references(Config.from_config(things))


def test_a_preset_stands_alone_and_takes_no_choice_of_the_cpu_default() -> None:
    """things.yaml runs alone: what it leaves out is the schema's default, not the CPU default's concept
    sample, feature standardisation, validation schedule or switched-off probes (which the paper grid
    inherited while presets were deep-merged over the default)."""
    things = merged("things.yaml")
    assert things["dataset"]["kind"] == "things" and things["dataset"]["max_concepts"] is None
    assert "tuxpaint" not in things["dataset"] and "tuxpaint_stamps" not in things["assets"]
    assert set(things["encoders"]) == {"dinov2_l", "siglip_b16"}
    training = things["training"]
    assert (training["lr"], training["epochs"], training["feature_norm"]) == (1.0e-3, 5, "none")
    assert (training["overrides"], training["val_every"], things["probe"]["enabled"]) == ([], 1, True)


def test_unknown_weights_asset_is_named() -> None:
    config = default_config()
    config["lms"]["smollm2_135m"]["weights"]["asset"] = "missing_asset"
    with pytest.raises(ConfigError, match=r"config.lms.smollm2_135m.weights.asset: 'missing_asset'"):
        check_references(Config.from_config(config))


def test_unknown_dataset_asset_is_named() -> None:
    config = default_config()
    config["dataset"]["tuxpaint"]["asset"] = "nope"
    with pytest.raises(ConfigError, match=r"config.dataset.tuxpaint.asset: 'nope'"):
        check_references(Config.from_config(config))


def test_lm_training_overrides_apply_to_that_lm_only() -> None:
    config = default_config()
    config["lms"]["other"] = {"source": "hf", "id": "x/y"}
    config["lms"]["smollm2_135m"]["training"] = {"lr": 0.5}
    assert training_config(config, "smollm2_135m", "yesno", "pretrained")["lr"] == 0.5
    assert training_config(config, "other", "yesno", "pretrained")["lr"] == config["training"]["lr"]


def test_overrides_select_by_objective_and_init_the_lms_own_last() -> None:
    """Tuned settings per objective x init (`snakemake tune`): global items, then the LM's block,
    then the LM's items; an item without a selector key selects every value of it."""
    config = {
        "training": {"lr": 1e-3, "epochs": 6, "overrides": [
            {"objective": "caption", "lr": 1e-2},
            {"objective": "caption", "init": "random", "lr": 3e-2, "epochs": 4},
        ]},
        "lms": {"l": {}, "m": {"training": {"lr": 1e-4, "overrides": [{"init": "random", "epochs": 2}]}}},
    }  # fmt: skip
    assert training_config(config, "l", "yesno", "random") == {"lr": 1e-3, "epochs": 6}
    assert training_config(config, "l", "caption", "pretrained") == {"lr": 1e-2, "epochs": 6}
    assert training_config(config, "l", "caption", "random") == {"lr": 3e-2, "epochs": 4}
    # the LM's own lr beats a global item; its own item beats both
    assert training_config(config, "m", "caption", "random") == {"lr": 1e-4, "epochs": 2}
    assert config["training"]["overrides"][0] == {"objective": "caption", "lr": 1e-2}  # never mutated


def _project() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _pins(lines: list[str]) -> dict[str, str]:
    """Canonical package name → `name==version` (PEP 503 names: `PyYAML` is `pyyaml`, `a_b` is `a-b`)."""
    return {re.sub(r"[-_.]+", "-", pin.split("==")[0]).lower(): pin.split("==")[1] for pin in lines}


def _locked(path: Path) -> tuple[dict[str, str], set[str]]:
    """A uv-compiled lock's pins, and the names of those without a `--hash`."""
    entries = re.findall(r"^(\S+==\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)", path.read_text(), re.M)
    pins = _pins([pin for pin, _ in entries])
    return pins, {name for name, (_, hashes) in zip(pins, entries) if not hashes}


def test_conda_env_pins_match_the_project_dependencies() -> None:
    pins = _pins(_project()["project"]["dependencies"])
    env = yaml.safe_load((REPO / "envs/taxvlm.yaml").read_text())
    pip_section = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    jobs_need = {name: version for name, version in pins.items() if not name.startswith("snakemake")}
    assert _pins(pip_section) == jobs_need, "envs/taxvlm.yaml and pyproject.toml's dependencies differ"


def test_locks_hold_every_pin_with_its_hashes() -> None:
    """requirements.lock: the runtime pins and everything they pull in; requirements-test.lock: that
    plus the test group, at the same versions. A pin edited in pyproject.toml without `make lock` fails here."""
    project = _project()
    runtime, unhashed = _locked(REPO / "requirements.lock")
    test, test_unhashed = _locked(REPO / "requirements-test.lock")
    assert not unhashed | test_unhashed, f"locked without a hash: {sorted(unhashed | test_unhashed)}"
    for wanted, lock in ((project["project"]["dependencies"], runtime), (project["dependency-groups"]["test"], test)):
        stale = {name: version for name, version in _pins(wanted).items() if lock.get(name) != version}
        assert not stale, f"pyproject.toml pins {stale}, the lock does not: run `make lock`"
    assert {name: test[name] for name in runtime} == runtime, "the test lock moved a runtime pin"


def _fused_config(fuse: int, conditions: list[str], seeds: list[int], m_fuse: int | None = None) -> dict:
    block = {"encoders": ["e"], "lms": ["l", "m"], "inits": ["pretrained", "random"], "conditions": conditions,
             "shuffles": ["original"], "objectives": ["yesno"], "seeds": seeds}
    return {"training": {"lr": 1e-3, "fuse": fuse}, "lms": {"l": {}, "m": {"training": {} if m_fuse is None else {"fuse": m_fuse}}},
            "experiments": [block, {**block, "lms": ["l"], "inits": ["pretrained"], "shuffles": ["across"]}]}


def _members(config: dict) -> dict[str, list[str]]:
    return {group.name: [run.path for run in group.runs] for group in fused_groups(config)}


def test_fused_groups_share_all_but_condition_and_shuffle_and_follow_the_config_order() -> None:
    config = _fused_config(3, ["none", "full", "random50"], [7])
    groups = fused_groups(config)
    assert fused_groups(config) == groups  # deterministic
    for group in groups:
        assert len(group.runs) <= 3
        assert len({(r.encoder, r.lm, r.init, r.objective, r.seed) for r in group.runs}) == 1
    l_pretrained = [g for g in groups if g.runs[0].lm == "l" and g.runs[0].init == "pretrained"]
    order = [(r.condition, r.shuffle) for g in l_pretrained for r in g.runs]
    assert order == [("none", "original"), ("none", "across"), ("full", "original"), ("full", "across"),
                     ("random50", "original"), ("random50", "across")]
    assert sorted(r for g in groups for r in g.runs) == expand_experiments(config["experiments"])
    # `fuse` is how runs are scheduled, never a run's setting; an LM may set its own (1: no group)
    assert "fuse" not in training_config(config, "l", "yesno", "pretrained") and fuse_limit(config, "l") == 3
    assert {g.runs[0].lm for g in fused_groups(_fused_config(3, ["none"], [7], m_fuse=1))} == {"l"}
    assert fused_groups(_fused_config(1, ["none"], [7])) == []


def test_adding_a_seed_or_appending_a_condition_keeps_the_other_groups() -> None:
    """The rerun contract of fused training (config/README.md): unchanged member lists keep their
    names (the rule and its params), so only groups with changed runs rerun."""
    before = _members(_fused_config(2, ["none", "full", "random50"], [7]))
    with_seed = _members(_fused_config(2, ["none", "full", "random50"], [7, 8]))
    assert set(before) < set(with_seed)
    assert all("seed8" in path for name in set(with_seed) - set(before) for path in with_seed[name])
    appended = _members(_fused_config(2, ["none", "full", "random50", "systematic1"], [7]))
    changed = [members for name, members in before.items() if name not in appended]
    assert changed and all(any("random50" in path for path in members) for members in changed)  # the last groups
    assert len(changed) == 3  # [random50] of l/random, m/pretrained, m/random; l/pretrained's 3 pairs stay


def test_a_groups_order_comes_from_the_blocks_that_train_its_runs() -> None:
    """A condition another LM's block lists earlier still lands last when appended to this LM's block."""
    def config(m_conditions: list[str]) -> dict:
        block = {"encoders": ["e"], "inits": ["pretrained"], "shuffles": ["original"], "objectives": ["yesno"],
                 "seeds": [7]}
        return {"training": {"fuse": 2}, "lms": {"l": {}, "m": {}},
                "experiments": [{**block, "lms": ["l"], "conditions": ["none", "random50", "full"]},
                                {**block, "lms": ["m"], "conditions": m_conditions}]}

    before, after = _members(config(["none", "full"])), _members(config(["none", "full", "random50"]))
    assert set(before) < set(after) and len(after) == len(before) + 1


def test_fuse_memory_budget_is_scheduling_not_a_runs_identity() -> None:
    """`fuse_memory_gib` reaches the fused jobs (an LM's own block first) and never a run's settings."""
    config = {"training": {"lr": 1e-3, "fuse_memory_gib": None},
              "lms": {"l": {}, "m": {"training": {"fuse_memory_gib": 2.5}}}}  # fmt: skip
    assert fuse_memory_gib(config, "l") is None and fuse_memory_gib(config, "m") == 2.5
    resolved = [training_config(config, lm, "yesno", "pretrained") for lm in ("m", "l")]
    assert resolved[0] == resolved[1] == {"lr": 1e-3}


def test_a_pretrained_run_without_its_twin_is_refused_naming_the_run():
    from taxvlm.config import Run, check_twins
    from taxvlm.grid import ConfigError

    pretrained = Run("e", "l", "pretrained", "full", "original", "caption", 7)
    twin = Run("e", "l", "random", "full", "original", "caption", 7)
    shuffled = Run("e", "l", "pretrained", "full", "across", "caption", 7)
    check_twins([pretrained, twin, shuffled], require_twin=True)
    with pytest.raises(ConfigError, match=r"e/l/pretrained/full/original/caption/seed7 has no random-init twin"):
        check_twins([pretrained], require_twin=True)
    with pytest.raises(ConfigError, match="no unshuffled pretrained run"):
        check_twins([twin, shuffled], require_twin=True)
    check_twins([pretrained], require_twin=False)


def test_default_profile_prints_no_shell_command_lines() -> None:
    """`printshellcmds` prints "Shell command: None" for a script rule; the default profile leaves it
    off while no rule has a `shell:` directive (one that gains one should reconsider)."""
    rules = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
    assert not [p.name for p in rules if re.search(r"^\s*shell:", p.read_text(), re.MULTILINE)]
    profile = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    assert not profile.get("printshellcmds")


def test_a_dataset_kind_without_its_section_is_named() -> None:
    """The schema cannot require the section `kind` names; planning and the dataset job both refuse
    its absence through `Dataset.reader`."""
    config = default_config()
    config["dataset"]["kind"] = "folder"
    message = r"^config\.dataset\.folder: missing section for dataset kind 'folder'$"
    with pytest.raises(ConfigError, match=message):
        check_references(Config.from_config(config))
    settings = Config.from_config(config)
    with pytest.raises(ConfigError, match=message):
        build_dataset(settings.dataset, settings.split, {}, Path("unused"))
