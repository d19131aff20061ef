"""What every section shares: unknown keys and loose types are errors, as in the generated schema."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model, model_validator

from taxvlm.grid import ConfigError


class Section(BaseModel):
    """A config section. Strict, so that `"3"` is not a number here when the schema says it is not
    one; frozen, so that a job cannot change the settings it was given.

    Every section keeps the mapping it was validated from, as it was written (`record()`, at every
    depth of the tree): records (`train_config.json`, the checkpoint fingerprint, the feature cache)
    hold it unchanged, never a re-serialisation that could turn an `epochs: 5` into `5.0` and so
    rerun a result for nothing."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    _record: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any], where: str = "config") -> Self:
        try:
            section = cls.model_validate(dict(mapping))
        except ValidationError as error:
            first = error.errors()[0]
            place = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
            raise ConfigError(f"{where}{place}: {first['msg']}") from None
        return section

    @model_validator(mode="wrap")
    @classmethod
    def _keep_record(cls, data: Any, handler: Any) -> Any:
        section = handler(data)
        if isinstance(data, Mapping):
            section._record = copy.deepcopy(dict(data))
        return section

    def record(self) -> dict[str, Any]:
        """The mapping this section was built from, as written."""
        return copy.deepcopy(self._record)


def section(model: type[Section], description: str | None = None) -> Any:
    """A sub-section whose absence means all its defaults (the schema's `default: {}` fills it, and
    validation then fills its keys)."""
    return Field(default_factory=model, description=description, json_schema_extra={"default": {}})


def optional(description: str | None = None, *, nullable: bool = False, **constraints: Any) -> Any:
    """A key that may be absent (None here) and has no default: the generated schema leaves it out of
    the config rather than writing `null` in (a `null` is accepted only where `nullable`)."""
    marker = "nullable" if nullable else "absent"
    return Field(None, description=description, json_schema_extra={"optional": marker}, **constraints)


def derive(model: type[Section], name: str, doc: str, *, drop: tuple[str, ...] = (), optional: bool = False) -> Any:
    """A section with `model`'s keys (their types, constraints and meanings) but those in `drop`;
    `optional`: every key may be absent and none has a default, for blocks that override another
    (filling defaults into them would turn every default into an override)."""
    keys: dict[str, Any] = {}
    for key, field in model.model_fields.items():
        if key in drop:
            continue
        if optional:
            nullable = type(None) in getattr(field.annotation, "__args__", ())
            field = copy.copy(field)
            field.default, field.default_factory = None, None
            field.json_schema_extra = {"optional": "nullable" if nullable else "absent"}
            keys[key] = (field.annotation | None, field)
        else:
            keys[key] = (field.annotation, field)
    return create_model(name, __base__=Section, __doc__=doc, __module__=model.__module__, **keys)
