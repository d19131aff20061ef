"""The JSON schema Snakemake validates with, generated from the settings tree, and validation that
fills its defaults as Snakemake's `validate` does (for code that builds a section without a whole
workflow config: tests, `perf/`, notebooks).

The generated schema says what the tree says, in the form a validator reports best: titles are
dropped, a nullable scalar is `type: [X, "null"]` rather than an `anyOf`, and a sub-section's
absence is `default: {}` so that validation descends into it and fills its keys.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonschema

from taxvlm.grid import ConfigError
from taxvlm.settings.tree import Config

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def config_schema() -> dict[str, Any]:
    """The configuration's JSON schema (draft 2020-12), as written to workflow/schemas/config.schema.yaml."""
    schema = _tidy(Config.model_json_schema())
    head = {"$schema": DRAFT, "description": schema.pop("description")}
    return {**head, **schema}


def _tidy(node: Any) -> Any:
    """pydantic's schema of `node` in the form described in the module docstring."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "discriminator" in node:
        node = _tagged(node)
    node = {key: _tidy(value) for key, value in node.items() if key != "title"}
    if isinstance(node.get("description"), str):
        node["description"] = " ".join(node["description"].split())
    optional = node.pop("optional", None)
    if optional:  # `taxvlm.settings.base.optional`: absent rather than a default
        node.pop("default", None)
    branches = node.get("anyOf")
    if branches and {"type": "null"} in branches:
        others = [branch for branch in branches if branch != {"type": "null"}]
        if optional == "absent":
            del node["anyOf"]
            node = {**(others[0] if len(others) == 1 else {"anyOf": others}), **node}
        elif len(others) == 1 and isinstance(others[0].get("type"), str):
            del node["anyOf"]
            node = {**others[0], **node, "type": [others[0]["type"], "null"]}
    return node


def _tagged(node: dict[str, Any]) -> dict[str, Any]:
    """A tagged union as one `if`/`then` per tag instead of a `oneOf`: only the form the tag names is
    checked, so an error names the bad key inside it rather than "valid under none of the schemas"."""
    tag, forms = node["discriminator"]["propertyName"], node["discriminator"]["mapping"]
    rest = {key: value for key, value in node.items() if key not in ("oneOf", "discriminator")}
    return {
        **rest,
        "type": "object",
        "required": [tag],
        "properties": {tag: {"enum": list(forms)}},
        "allOf": [
            {"if": {"properties": {tag: {"const": value}}}, "then": {"$ref": ref}} for value, ref in forms.items()
        ],
    }


def fill_defaults(value: Any, *path: str) -> Any:
    """`value` (the config section at `path`, e.g. `("lms", "*")` for one LM) with the schema's defaults
    filled in, as Snakemake's `validate` fills them. A `*` step is an entry of a name → spec mapping, a
    `[]` step an item of a list; no step at all fills a whole config."""
    schema = config_schema()
    node: Mapping[str, Any] = schema
    for step in path:
        node = resolve(node, schema["$defs"])
        node = (
            node["additionalProperties"] if step == "*" else node["items"] if step == "[]" else node["properties"][step]
        )
    filled = copy.deepcopy(value)
    validator = _FillingValidator({**node, "$defs": schema["$defs"]})
    error = jsonschema.exceptions.best_match(validator.iter_errors(filled))
    if error is not None:
        raise ConfigError(f"config.{'.'.join(path)}: {error.message}")
    return filled


def resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """`node`, or the definition its `$ref` names with `node`'s other keywords (its default, its
    meaning) over it."""
    while "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _fill(validator: Any, properties: Mapping[str, Any], instance: Any, schema: Any) -> Any:
    """The `properties` keyword, after writing each absent property's `default` into the instance."""
    if isinstance(instance, dict):
        for name, sub in properties.items():
            if isinstance(sub, dict) and "default" in sub:
                instance.setdefault(name, copy.deepcopy(sub["default"]))
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


_FillingValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"properties": _fill})
