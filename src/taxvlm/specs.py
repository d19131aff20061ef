"""Typed, complete settings of the models and the training, built once from the validated config.

The JSON schema (`workflow/schemas/config.schema.yaml`) is the one source of defaults: Snakemake's
`validate` fills them in before any job starts, so a spec reads every key it needs without a
fallback, and a key the schema fills but the mapping lacks is an error naming it (a config that
skipped validation, or a schema default that was dropped), never a silent second default.
Keys the schema leaves optional without a default (a hub `id`, a `revision`, local `weights`) are
`None` when absent.

`record()` gives the mapping back exactly as the config had it (what `train_config.json`, the
checkpoint fingerprint and the feature cache record), so typing the settings changes no output.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Self

import jsonschema
import yaml
from referencing import Registry, Resource

from taxvlm.grid import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class _Spec:
    """`from_config` / `record` for a frozen dataclass whose fields are config keys."""

    @classmethod
    def from_config(cls, section: Mapping[str, Any], where: str = "config") -> Self:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(section) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__} (known: {sorted(names)})")
        required = {f.name for f in fields(cls) if f.default is MISSING}  # type: ignore[arg-type]
        missing = sorted(required - set(section))
        if missing:
            raise ConfigError(
                f"{where}: missing {missing}; the schema requires these or fills their defaults, so this mapping "
                "was not validated"
            )
        return cls(**copy.deepcopy(dict(section)))

    def record(self) -> dict[str, Any]:
        """The config mapping this spec was built from (optional keys left out when absent)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return copy.deepcopy({key: value for key, value in values.items() if value is not None})


@dataclass(frozen=True)
class EncoderSpec(_Spec):
    """One `config.encoders` entry."""

    source: str
    layer: int | str
    features: str
    image_size: int
    name: str | None = None
    id: str | None = None
    revision: str | None = None
    weights: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class LMSpec(_Spec):
    """One `config.lms` entry without its `training` overrides: the rule's `lm` param, which planning
    (`lm_spec` in common.smk) splits from them; they reach `TrainingSpec` through `training_config`."""

    source: str
    chat_template: bool
    random_init_seed: int
    id: str | None = None
    revision: str | None = None
    weights: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class TrainingSpec(_Spec):
    """One run's training settings: the rule's `training` param, which `taxvlm.config.training_config`
    resolves (the global block, the LM's and the matching `overrides`) without the keys that are no run's
    setting (`taxvlm.grid.NOT_RUN_SETTINGS`); such a key here is an unknown key."""

    projector: str
    prefix_tokens: int
    feature_norm: str
    lr: float
    weight_decay: float
    warmup_fraction: float
    epochs: float
    batch_size: int
    grad_clip: float
    checkpoint_every: int
    val_every: float
    eval_every: float
    eval_every_unit: str
    batching: str
    compile: str


@dataclass(frozen=True)
class FrozenLM:
    """Which frozen LM a job loads: its spec, its local weights folder (None: by hub id) and its init
    (`pretrained`, or `random`: the twin drawn from `spec.random_init_seed`)."""

    spec: LMSpec
    weights_dir: Path | None
    init: str

    @classmethod
    def from_config(cls, lm: Mapping[str, Any], weights_dir: str | Path | None, init: str) -> FrozenLM:
        """From a rule's `lm` param, its optional `lm_weights` input (`[]`/`''` when the LM loads by hub
        id) and the run's init."""
        return cls(LMSpec.from_config(lm, "lm"), Path(weights_dir) if weights_dir else None, init)


@dataclass(frozen=True)
class TrainedRun:
    """A trained run as the later stages load it: its frozen LM, the seed its projector.pt must carry,
    and its projector and feature files (`taxvlm.evaluation.runs.load_run`)."""

    lm: FrozenLM
    seed: int
    projector: Path
    features: Path


@dataclass(frozen=True)
class TrainingSetup:
    """What a projector training is, apart from its rows, seed and files: the settings every run of a
    fused group shares (`taxvlm.training.loop.train_projectors`)."""

    lm: FrozenLM
    encoder: EncoderSpec
    training: TrainingSpec
    objective: str

    @classmethod
    def from_config(
        cls,
        *,
        lm: Mapping[str, Any],
        lm_weights: str | Path | None,
        init: str,
        encoder: Mapping[str, Any],
        training: Mapping[str, Any],
        objective: str,
    ) -> TrainingSetup:
        """From a training rule's params (`lm`, `encoder`, `training`), its optional `lm_weights` input
        and the run's init and objective."""
        return cls(
            FrozenLM.from_config(lm, lm_weights, init),
            EncoderSpec.from_config(encoder, "encoder"),
            TrainingSpec.from_config(training, "training"),
            objective,
        )

    def projector(self) -> dict[str, Any]:
        """The projector's architecture (stored in projector.pt, `taxvlm.models.projector.build_projector`)."""
        return {
            "projector": self.training.projector,
            "prefix_tokens": self.training.prefix_tokens,
            "features": self.encoder.features,
            "feature_norm": self.training.feature_norm,
        }


def trained_run(
    lm: Mapping[str, Any],
    lm_weights: str | Path | None,
    keys: Mapping[str, Any],
    projector: str | Path,
    features: str | Path,
) -> TrainedRun:
    """From a later stage's rule: its `lm` param, optional `lm_weights` input, the run's keys (its
    wildcards: `init`, `seed`), and its projector and feature files."""
    frozen = FrozenLM.from_config(lm, lm_weights, keys["init"])
    return TrainedRun(frozen, int(keys["seed"]), Path(projector), Path(features))


def with_schema_defaults(value: Any, *path: str, schema_path: Path = SCHEMA_PATH) -> Any:
    """`value` (the config section at `path`, e.g. `("lms", "*")` for one LM) with the schema's
    defaults filled in, as Snakemake's `validate` fills them: for tests, benchmarks and notebooks that
    build a spec without a whole workflow config. A `*` step is an entry of a name → spec mapping, a
    `[]` step an item of a list; no step at all fills a whole config."""
    schema = yaml.safe_load(schema_path.read_text(encoding="utf-8"))
    steps = {"*": "/additionalProperties", "[]": "/items"}
    pointer = "".join(steps.get(step, f"/properties/{step}") for step in path)
    registry = Registry().with_resource(_SCHEMA_URI, Resource.from_contents(schema))
    filled = copy.deepcopy(value)
    error = jsonschema.exceptions.best_match(
        _FillingValidator({"$ref": f"{_SCHEMA_URI}#{pointer}"}, registry=registry).iter_errors(filled)
    )
    if error is not None:
        raise ConfigError(f"config.{'.'.join(path)}: {error.message}")
    return filled


_SCHEMA_URI = "urn:taxvlm:config-schema"


def _fill_defaults(validator: Any, properties: Mapping[str, Any], instance: Any, schema: Any) -> Any:
    """The `properties` keyword, after writing each absent property's `default` into the instance."""
    if isinstance(instance, dict):
        for name, sub in properties.items():
            if isinstance(sub, dict) and "default" in sub:
                instance.setdefault(name, copy.deepcopy(sub["default"]))
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


_FillingValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"properties": _fill_defaults})
