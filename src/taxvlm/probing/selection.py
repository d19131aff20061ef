"""Which runs the probe stage probes, and where a question's target word ends: the workflow's
config logic for `probe:`, here so that it is unit-tested (workflow/rules/probing.smk calls it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taxvlm.config import Run
from taxvlm.grid import ConfigError

SELECTORS = {
    "encoders": "encoder",
    "lms": "lm",
    "inits": "init",
    "conditions": "condition",
    "shuffles": "shuffle",
    "seeds": "seed",
}


def probe_runs(probe: Mapping[str, Any], yesno_runs: Sequence[Run]) -> list[Run]:
    """The yes/no runs `config.probe.runs` selects (each key a list; an absent key selects all);
    none when `config.probe.enabled` is false. A value that matches no run is a config error."""
    if not probe["enabled"]:
        return []
    select = probe["runs"]
    for key, field in SELECTORS.items():
        known = {getattr(run, field) for run in yesno_runs}
        for value in select.get(key, []):
            if value not in known:
                raise ConfigError(f"config.probe.runs.{key}: {value!r} matches no yes/no run of the grid")
    return [run for run in yesno_runs if all(getattr(run, f) in select[k] for k, f in SELECTORS.items() if k in select)]


def name_suffix(template: str) -> str:
    """The question template's text after `{name}`: where the target word ends."""
    if "{name}" not in template:
        raise ConfigError("config.questions.template: no {name}; the probe finds the target word by it")
    return template.split("{name}", 1)[1]
