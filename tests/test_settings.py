"""The settings tree is the one source of every key's type, default and meaning: the schema Snakemake
validates with and config/README.md's key reference are generated from it and must not go stale."""

from __future__ import annotations

from pathlib import Path

import pytest
from snakemake.utils import validate

from taxvlm.grid import ConfigError
from taxvlm.settings.generate import readme_text, schema_text
from taxvlm.settings.models import EncoderSpec
from taxvlm.settings.tree import Config

from spec_builders import SCHEMA, preset

REPO = Path(__file__).resolve().parents[1]
README = REPO / "config/README.md"
PRESETS = [
    ["config/config.yaml"],
    ["config/things.yaml"],
    ["config/limber.yaml"],
    [".test/config/config.yaml"],
    *(["config/config.yaml", f"config/{overlay}.yaml"] for overlay in
      ("extended", "limber_default", "compositional_default", "compositional")),
]  # fmt: skip


def test_the_committed_schema_is_generated_from_the_tree() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == schema_text(), "run `make config-docs`"


def test_the_readme_key_reference_is_generated_from_the_tree() -> None:
    current = README.read_text(encoding="utf-8")
    assert current == readme_text(current), "run `make config-docs`"


@pytest.mark.parametrize("files", PRESETS, ids=lambda files: "+".join(Path(f).stem for f in files))
def test_every_shipped_preset_builds_the_tree_after_validation(files: list[str]) -> None:
    """What the schema accepts and fills, the tree accepts as it is: the two cannot disagree on a
    shipped preset (strict types, the same defaults)."""
    config = preset(*files)
    validate(config, str(SCHEMA))
    tree = Config.from_config(config)
    assert tree.record() == config
    assert tree.training.lr == config["training"]["lr"]


def test_an_lm_training_block_keeps_only_what_it_names() -> None:
    """An LM's `training` has no defaults in the schema, so validation fills none into it (the guard
    `keep_lm_training_overrides` existed only because the schema once filled them)."""
    config = preset("config/config.yaml")
    config["lms"]["smollm2_135m"]["training"] = {"lr": 0.5}
    validate(config, str(SCHEMA))
    assert config["lms"]["smollm2_135m"]["training"] == {"lr": 0.5}
    assert Config.from_config(config).lms["smollm2_135m"].training.epochs is None


def test_a_section_names_its_bad_key_in_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        EncoderSpec.from_config({"source": "hf", "layer": -2, "image_size": "big"}, "encoder")
    assert str(err.value) == "encoder.image_size: Input should be a valid integer"


def test_every_key_says_what_it_means() -> None:
    """A key without a meaning would leave its reference line empty; a converter's options are the
    converter's arguments (listed with it), and `convert` is the tag that picks the converter."""
    from taxvlm.settings.schema import config_schema

    silent = [
        f"{name}.{key}"
        for name, node in config_schema()["$defs"].items()
        if not name.endswith("Options")
        for key, sub in node.get("properties", {}).items()
        if "description" not in sub and "$ref" not in sub and key != "convert"
    ]
    assert silent == []
