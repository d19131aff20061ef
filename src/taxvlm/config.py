"""Planning: config checks, the experiment grid and its fused groups, config warnings.

The JSON schema (generated from `taxvlm.settings`) checks types and fills defaults; this module
adds what a schema cannot express (cross-references between sections) and turns the union of
experiment grids into the list of runs, so the workflow and the tests share one definition.

Only the Snakefile (and planning modules it imports) import this module, never a job: jobs share
its words through `taxvlm.grid`, so that editing planning reruns no job (`tests/test_sources.py`).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from taxvlm.grid import ConfigError, run_settings
from taxvlm.settings.tree import Config


# A run's folder under results/runs/ (and checkpoints/, logs/...): the rules' wildcard pattern, and
# `Run.path` fills it in, so the two cannot drift apart.
RUN_PATH = "{encoder}/{lm}/{init}/{condition}/{shuffle}/{objective}/seed{seed}"


@dataclass(frozen=True, order=True)
class Run:
    """One projector training: the unit of work of the grid. `objective` is what the projector is
    trained on: `yesno` (the paper's forced-choice questions) or `caption` (LiMBeR's captions)."""

    encoder: str
    lm: str
    init: str
    condition: str
    shuffle: str
    objective: str
    seed: int

    @property
    def path(self) -> str:
        return RUN_PATH.format(**self.keys())

    def keys(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "lm": self.lm,
            "init": self.init,
            "condition": self.condition,
            "shuffle": self.shuffle,
            "objective": self.objective,
            "seed": self.seed,
        }


def _field(path: Any) -> str:
    parts = ["config"]
    for part in path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts)


def schema_error(config: Mapping[str, Any], schema_path: str | Path) -> str | None:
    """The most relevant schema violation as one line (None if valid).

    Snakemake's own `validate` prints the whole jsonschema report; users asked for one line that
    names the field, so the best match is formatted here before Snakemake injects the defaults.
    """
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(config)))
    if error is None:
        return None
    hint = ""
    if error.validator == "required" and not error.absolute_path:
        hint = (" (a preset stands alone: an overlay goes after a whole preset, "
                "`--configfile config/config.yaml overlay.yaml`; config/README.md)")
    return f"{_field(error.absolute_path)}: {error.message}{hint}"


def expand_experiments(experiments: list[Mapping[str, Any]]) -> list[Run]:
    """The sorted, de-duplicated union of the config's experiment grids."""
    runs = set()
    for block in experiments:
        for combo in itertools.product(
            block["encoders"],
            block["lms"],
            block["inits"],
            block["conditions"],
            block["shuffles"],
            block["objectives"],
            block["seeds"],
        ):
            runs.add(Run(*combo[:6], int(combo[6])))
    return sorted(runs)


def check_twins(runs: list[Run], require_twin: bool) -> None:
    """Refuse, before any job, a grid whose held-out contrast has no twin: every unshuffled pretrained
    run needs its random-init twin (same encoder, LM, condition, objective and seed) when
    `analysis.require_twin` is true, since the pretrained − twin difference is the study's verdict
    (docs/protocol.md §11a). A shuffled run's contrast is original − shuffle, so it needs the
    unshuffled pretrained run instead."""
    if not require_twin:
        return
    present = {(r.encoder, r.lm, r.init, r.condition, r.shuffle, r.objective, r.seed) for r in runs}
    for run in runs:
        if run.init != "pretrained":
            continue
        needed = ("random", run.shuffle) if run.shuffle == "original" else ("pretrained", "original")
        key = (run.encoder, run.lm, needed[0], run.condition, needed[1], run.objective, run.seed)
        if key not in present:
            what = "random-init twin" if needed[0] == "random" else "unshuffled pretrained run"
            raise ConfigError(
                f"config.experiments: the run {run.path} has no {what} in the grid, so its held-out contrast "
                f"cannot be formed; add inits [pretrained, random] (or the original shuffle) to its block, or set "
                f"config.analysis.require_twin: false"
            )


def check_references(settings: Config) -> None:
    """Fail on names that point nowhere, before any job starts."""
    assets = settings.assets.model_extra
    families = settings.model_families()
    for family, entries in families.items():
        for name, spec in entries.items():
            named = spec.weights.asset if spec.weights and spec.weights.asset else []
            for asset in [named] if isinstance(named, str) else named:
                if asset not in assets:
                    raise ConfigError(
                        f"config.{family}.{name}.weights.asset: '{asset}' is not defined under config.assets "
                        f"(known: {', '.join(sorted(assets)) or 'none'})"
                    )
    for index, block in enumerate(settings.experiments):
        for family, entries in families.items():
            for name in getattr(block, family):
                if name not in entries:
                    known = ", ".join(sorted(entries)) or "none"
                    raise ConfigError(
                        f"config.experiments[{index}].{family}: '{name}' is not defined under config.{family} "
                        f"(known: {known})"
                    )
    tuning = settings.tuning
    if tuning.lm not in settings.lms:
        raise ConfigError(f"config.tuning.lm: '{tuning.lm}' is not defined under config.lms")
    for index, target in enumerate(tuning.targets):
        if target.encoder not in settings.encoders:
            raise ConfigError(
                f"config.tuning.targets[{index}].encoder: '{target.encoder}' is not defined under config.encoders"
            )
    for name in settings.analysis.textprobe.lms or []:
        if name not in settings.lms:
            raise ConfigError(f"config.analysis.textprobe.lms: '{name}' is not defined under config.lms")
    kind = settings.dataset.kind
    for key, value in settings.dataset.reader().record().items():
        names = value if isinstance(value, list) else [value]
        for name in names if key.endswith(("asset", "assets")) else []:
            if name not in assets:
                raise ConfigError(f"config.dataset.{kind}.{key}: '{name}' is not defined under config.assets")


def training_config(config: Mapping[str, Any], lm: str, objective: str, init: str) -> dict[str, Any]:
    """The training settings of one (LM, objective, init): the global block, its `overrides` that
    match, then the LM's own block and its matching `overrides` (the more specific wins).

    Resolving per run kind lets Snakemake's params trigger rerun exactly the jobs whose settings
    changed. The selectors are the objective and the init because `snakemake tune` chooses
    learning rate and length for each of them separately (a random-init twin may need another lr).
    """
    merged: dict[str, Any] = {}
    for block in (config["training"], config["lms"][lm].get("training", {})):
        merged.update({key: value for key, value in block.items() if key != "overrides"})
        for override in block.get("overrides", []):
            if override.get("objective", objective) == objective and override.get("init", init) == init:
                merged.update({key: value for key, value in override.items() if key not in ("objective", "init")})
    return run_settings(merged)


def _lm_training(config: Mapping[str, Any], lm: str) -> dict[str, Any]:
    """The global training block with the LM's own overrides, scheduling keys included."""
    merged = copy.deepcopy(dict(config["training"]))
    merged.update(config["lms"][lm].get("training", {}))
    return merged


def fuse_limit(config: Mapping[str, Any], lm: str) -> int:
    """`training.fuse` of an LM (its own `training` block first): the most runs one fused job trains."""
    return int(_lm_training(config, lm)["fuse"])


def fuse_memory_gib(config: Mapping[str, Any], lm: str) -> float | None:
    """`training.fuse_memory_gib` of an LM (its own `training` block first): the activation budget of
    one LM pass of its fused jobs (`taxvlm.training.memory`); None: no limit."""
    return _lm_training(config, lm)["fuse_memory_gib"]


@dataclass(frozen=True)
class FusedGroup:
    """Runs trained by one fused job (`taxvlm.training.loop.train_projectors`); named by its members, so an
    unchanged member list keeps its name, its outputs and its params."""

    runs: tuple[Run, ...]

    @property
    def name(self) -> str:
        digest = hashlib.sha256("\n".join(run.path for run in self.runs).encode()).hexdigest()
        return f"train_fused_{digest[:12]}"


def _block_orders(experiments: list[Mapping[str, Any]]) -> dict[tuple[str, ...], dict[str, dict[str, int]]]:
    """Per (encoder, LM, init, objective): each condition's and shuffle's rank of first appearance in
    the blocks that train it (blocks and lists in order)."""
    orders: dict[tuple[str, ...], dict[str, dict[str, int]]] = {}
    for block in experiments:
        objectives = block["objectives"]
        for key in itertools.product(block["encoders"], block["lms"], block["inits"], objectives):
            ranks = orders.setdefault(key, {"conditions": {}, "shuffles": {}})
            for name, seen in ranks.items():
                for value in block[name]:
                    seen.setdefault(value, len(seen))
    return orders


def fused_groups(config: Mapping[str, Any]) -> list[FusedGroup]:
    """The grid's runs of LMs with `training.fuse` > 1, cut into groups of at most `fuse` runs.

    A group shares encoder, LM, init, objective and seed (the training settings are the LM's), so
    adding a seed only adds groups. Within those, runs are ordered by where their condition first
    appears in the blocks that train that (encoder, LM, init, objective), then their shuffle, so a
    condition appended after its others lands in the last or a new group; the rerun contract
    (config/README.md) follows from it.
    """
    orders = _block_orders(config["experiments"])
    by_key: dict[tuple[str, str, str, str, int], list[Run]] = {}
    for run in expand_experiments(config["experiments"]):
        if fuse_limit(config, run.lm) > 1:
            by_key.setdefault((run.encoder, run.lm, run.init, run.objective, run.seed), []).append(run)
    groups = []
    for key, runs in sorted(by_key.items()):
        rank = orders[key[:4]]
        runs.sort(key=lambda run: (rank["conditions"][run.condition], rank["shuffles"][run.shuffle]))
        size = fuse_limit(config, key[1])
        groups += [FusedGroup(tuple(runs[i : i + size])) for i in range(0, len(runs), size)]
    return groups


def unpinned_models(settings: Config) -> list[str]:
    """Models loaded from a hub (no local `weights`) without a `revision`: their files may change
    upstream between runs. `timm` encoders cannot be pinned by revision (use local `weights`)."""
    return [
        f"{family}.{name}"
        for family, entries in settings.model_families().items()
        for name, spec in sorted(entries.items())
        if not spec.weights and not spec.revision
    ]
