"""Typed specs built from the validated config: the settings tree is the one source of defaults."""

from __future__ import annotations


import pytest
import yaml

from taxvlm.config import training_config
from taxvlm.grid import NOT_RUN_SETTINGS, ConfigError, run_settings
from taxvlm.settings.models import EncoderSpec, LMSpec
from taxvlm.settings.schema import fill_defaults
from taxvlm.settings.training import TrainingSpec
from taxvlm.specs import TrainingSetup, trained_run

from spec_builders import SCHEMA, lm_spec, preset, validated

SCHEMA_TREE = yaml.safe_load(SCHEMA.read_text())


def _entry_properties(family: str) -> set[str]:
    entry = SCHEMA_TREE["properties"][family]["additionalProperties"]["$ref"].rsplit("/", 1)[1]
    return set(SCHEMA_TREE["$defs"][entry]["properties"])


def test_every_spec_builds_from_the_schema_defaults_alone() -> None:
    """Only the keys the schema requires are given; everything else comes from its defaults."""
    training = TrainingSpec.from_config(run_settings(fill_defaults({}, "training")))
    assert training.prefix_tokens == 4 and training.grad_clip == 1.0 and training.warmup_fraction == 0.03
    assert training.checkpoint_every == 200 and training.batching == "rows"
    lm = lm_spec()
    assert (lm.chat_template, lm.random_init_seed, lm.id, lm.revision, lm.weights) == (False, 0, None, None, None)
    for source in ("timm", "open_clip", "hf"):
        encoder = EncoderSpec.from_config(fill_defaults({"source": source, "layer": -2}, "encoders", "*"))
        assert (encoder.features, encoder.image_size) == ("tokens", 224)


def test_spec_fields_are_the_schema_keys() -> None:
    """A key added to the schema needs its field (and the reverse): nothing is read around a spec."""
    training = set(SCHEMA_TREE["$defs"]["Training"]["properties"])
    assert set(TrainingSpec.model_fields) == training - set(NOT_RUN_SETTINGS)
    assert set(LMSpec.model_fields) == _entry_properties("lms") - {"training"}
    assert set(EncoderSpec.model_fields) == _entry_properties("encoders")


def test_record_gives_the_config_mapping_back() -> None:
    """train_config.json, the checkpoint fingerprint and the feature cache record the mapping as the
    config had it, so typing the settings changed none of them."""
    mapping = {"source": "hf", "id": "org/model", "revision": "a" * 40, "chat_template": False, "random_init_seed": 5}
    assert LMSpec.from_config(mapping).record() == mapping
    encoder = {"source": "timm", "name": "x", "layer": "final", "features": "pooled"}
    encoder = fill_defaults(encoder, "encoders", "*")
    assert EncoderSpec.from_config(encoder).record() == encoder


def test_the_tree_and_the_generated_schema_fill_the_same_defaults() -> None:
    """A section built from a partial mapping (a test, `perf/`) has the defaults validation would fill."""
    filled = run_settings(fill_defaults({}, "training"))
    assert TrainingSpec.from_config({}).model_dump() == TrainingSpec.from_config(filled).model_dump()


def test_a_stray_key_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^config\.lyer: Extra inputs are not permitted$"):
        EncoderSpec.from_config({**fill_defaults({"source": "hf", "layer": 1}, "encoders", "*"), "lyer": 1})
    with pytest.raises(ConfigError, match="config.lms.*: 'source' is a required property"):
        fill_defaults({}, "lms", "*")


@pytest.mark.parametrize("files", [["config.yaml"], ["limber.yaml"], ["things.yaml"], ["config.yaml", "compositional.yaml"]])
def test_every_shipped_config_builds_its_run_specs(files: list[str]) -> None:
    """Every encoder and LM of the shipped configs, with each LM's own training settings, as the
    training and evaluation jobs build them from their params."""
    config = validated(preset(*(f"config/{name}" for name in files)))
    for lm, lm_section in config["lms"].items():
        lm_params = {key: value for key, value in lm_section.items() if key != "training"}
        for encoder in config["encoders"].values():
            for objective in ("yesno", "caption"):
                training = training_config(config, lm, objective, "random")
                spec = TrainingSetup.from_config(lm=lm_params, lm_weights=None, init="random", encoder=encoder,
                                           training=training, objective=objective)
                assert spec.projector()["features"] == encoder["features"]
                assert spec.training.record() == training
        run = trained_run(lm_params, "", {"init": "pretrained", "seed": "7"}, "p/projector.pt", "f.pt")
        assert (run.lm.weights_dir, run.seed, run.lm.init) == (None, 7, "pretrained")
