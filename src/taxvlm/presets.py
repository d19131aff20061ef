"""What a preset names, declared once: its models (`config/models/`) and its dataset (`config/datasets/`).

A preset stands alone (the Snakefile reads config/config.yaml only when no `--configfile` names another),
so what several presets share lives here instead of in one preset the others inherit.

The model registry: `config/models/*.yaml` each hold `encoders:` and/or `lms:` mappings, id → the model's spec (as
`config.encoders` / `config.lms` entries take it) plus the `assets` its weights are built from. A
preset lists the ids it uses (`encoders: [dinov2_l]`); a model of the user's own goes under the
config's `models:` in the same shape, so that a preset never redeclares a shipped model and a shipped
id always means the same weights, whatever preset names it (results are filed under the id). How a
preset trains one of its LMs is the preset's choice, not the model's: `training.by_lm.<id>` (the keys
of `training`) goes over the LM's own `training` block.

The dataset declarations: `config/datasets/<kind>.yaml` holds what every preset on that dataset shares
(its downloads, and for the Tux Paint stamps the WordNet targets and hand-picked senses); a preset with
`dataset.kind: <kind>` is deep-merged over it, so the preset's own keys win.

Planning only: `resolve_preset` turns the config into the mappings the rest of the workflow reads,
before the schema validates it, and only the Snakefile imports this module.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from snakemake.utils import update_config

from taxvlm.grid import ConfigError

FAMILIES = ("encoders", "lms")


def resolve_preset(config: dict[str, Any], config_dir: Path) -> None:
    """In place: the preset over the declarations of the datasets it names (its `dataset.kind`, and any
    dataset block it sets, so that a block stays whole when another file switches the kind), then its
    models from the registry."""
    dataset = config.get("dataset", {})
    named = sorted({dataset.get("kind"), *dataset} & {path.stem for path in (config_dir / "datasets").glob("*.yaml")})
    if named:
        merged: dict[str, Any] = {}
        for kind in named:
            update_config(merged, yaml.safe_load((config_dir / "datasets" / f"{kind}.yaml").read_text(encoding="utf-8")) or {})
        update_config(merged, config)
        config.clear()
        config.update(merged)
    resolve_models(config, config_dir / "models")


def load_registry(folder: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """family → id → entry from every `*.yaml` under `folder`; an id declared twice is an error."""
    return _load(folder)[0]


def _load(folder: Path) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[tuple[str, str], str]]:
    """The registry, and the file that declares each (family, id)."""
    registry: dict[str, dict[str, dict[str, Any]]] = {family: {} for family in FAMILIES}
    where: dict[tuple[str, str], str] = {}
    for path in sorted(folder.glob("*.yaml")):
        _add(registry, where, yaml.safe_load(path.read_text(encoding="utf-8")) or {}, str(path))
    return registry, where


def resolve_models(config: dict[str, Any], folder: Path) -> None:
    """In place: each family's list of ids becomes its id → spec mapping (registry entries, and the
    config's own `models:`), the used models' `assets` join `config.assets`, `training.by_lm` goes into
    the LMs' own `training` blocks, and `models` and `by_lm` go."""
    registry, where = _load(folder)
    _add(registry, where, config.pop("models", None) or {}, "config.models")
    for family in FAMILIES:
        if family not in config:
            continue
        ids = config[family]
        if not isinstance(ids, list) or not all(isinstance(model_id, str) for model_id in ids):
            raise ConfigError(
                f"config.{family}: a list of model ids (config/models/*.yaml, or the config's own "
                f"`models.{family}`), not {type(ids).__name__}"
            )
        unknown = [model_id for model_id in ids if model_id not in registry[family]]
        if unknown:
            raise ConfigError(
                f"config.{family}: unknown model id(s) {unknown}; known: {sorted(registry[family])} "
                f"(a model of your own goes under `models.{family}`)"
            )
        config[family] = {model_id: _spec(registry[family][model_id], family, model_id, config) for model_id in ids}
    by_lm = config.get("training", {}).pop("by_lm", None) or {}
    unknown = sorted(set(by_lm) - set(config.get("lms", {})))
    if unknown:
        raise ConfigError(f"config.training.by_lm: {unknown} not in config.lms ({sorted(config.get('lms', {}))})")
    for model_id, settings in by_lm.items():
        own = config["lms"][model_id].setdefault("training", {})
        update_config(own, copy.deepcopy(settings))


def _add(registry: dict[str, dict[str, dict[str, Any]]], where: dict[tuple[str, str], str],
         entries: Mapping[str, Any], source: str) -> None:
    unknown = sorted(set(entries) - set(FAMILIES))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown} (a model registry holds {list(FAMILIES)})")
    for family, models in entries.items():
        for model_id, entry in (models or {}).items():
            if (family, model_id) in where:
                raise ConfigError(
                    f"{source}: {family} id {model_id!r} is already declared in {where[family, model_id]}; "
                    "give the model another id (results are filed under it)"
                )
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{source}: {family}.{model_id} is not a mapping")
            registry[family][model_id] = copy.deepcopy(dict(entry))
            where[family, model_id] = source


def _spec(entry: dict[str, Any], family: str, model_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """The entry without its `assets`, which are added to `config.assets` (the same key must mean the
    same file)."""
    spec = copy.deepcopy(entry)
    assets = config.setdefault("assets", {})
    for key, asset in spec.pop("assets", {}).items():
        if key in assets and assets[key] != asset:
            raise ConfigError(
                f"config.assets.{key}: declared differently by the config and by {family}.{model_id} of the "
                "model registry"
            )
        assets[key] = asset
    return spec
