"""config/compositional.yaml and the `compositional` schema section."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxvlm.compositional.config import check_compositional
from taxvlm.config import check_references, expand_experiments, schema_error
from taxvlm.grid import ConfigError
from taxvlm.settings.tree import Config

from spec_builders import preset, validated

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def merged(*names: str) -> dict:
    """The validated config of the default preset with the named overlays after it."""
    return validated(preset("config/config.yaml", *(f"config/{name}" for name in names)))


def check(config: dict) -> None:
    """The compositional cross-checks, as planning runs them on the typed config and the grid's runs."""
    check_compositional(Config.from_config(config), expand_experiments(config["experiments"]))


@pytest.mark.parametrize("name", ["compositional.yaml", "compositional_default.yaml"])
def test_compositional_configs_validate(name: str) -> None:
    config = merged(name)
    assert schema_error(config, SCHEMA) is None
    check_references(Config.from_config(config))
    check(config)


def test_real_config_has_vit_b32_coco_and_the_four_benchmarks() -> None:
    section = merged("compositional.yaml")["compositional"]
    assert section["open_clip"]["vit_b32"] == {"name": "ViT-B-32", "pretrained": "openai"}
    assert section["contrastive"]["faithful"]["captions"] == "coco"
    formats = {b["format"] for b in section["benchmarks"].values()}
    assert {"sugarcrepe", "aro_relation", "aro_attribution", "aro_order", "valse", "vlchecklist"} <= formats
    pinned = [f for b in section["benchmarks"].values() for f in b["files"].values() if f["sha256"]]
    assert all("/raw.githubusercontent.com/" in f["url"] for f in pinned)  # only commit-pinned files have hashes


def test_schema_and_cross_checks_name_the_bad_field() -> None:
    config = merged("compositional.yaml")
    config["compositional"]["benchmarks"]["valse"]["format"] = "valse2"
    assert "config.compositional.benchmarks.valse.format" in schema_error(config, SCHEMA)
    config = merged("compositional.yaml")
    config["compositional"]["contrastive"]["faithful"]["model"] = "nope"
    with pytest.raises(ConfigError, match="compositional.contrastive.faithful.model 'nope'"):
        check(config)
