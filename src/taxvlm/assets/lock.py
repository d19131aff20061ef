"""The asset lock file: the sha256 of each unpinned asset as first downloaded (issue 30).

An asset whose config entry has `sha256: null` does not stop a run: its first download is kept and its
hash recorded in `resources/assets.lock` (JSON, one entry per asset key, with the source it was fetched
from); later downloads of the same source must match it. The workflow warns about such assets when a run
starts and when it ends (`unpinned_report`). `assets.require_pins: true` in the config turns an unpinned
asset into an error before any job starts (`check_pins`).

Writers take an exclusive `flock` on `<lock>.guard` and replace the file atomically, so parallel fetch
jobs on one machine (the fetch rule is a local rule) record their entries without losing each other's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from taxvlm.io import atomic_path

LOCK_PATH = Path("resources/assets.lock")
OPTION_KEYS = frozenset({"require_pins"})  # keys of config.assets that are settings, not assets
IDENTITY_KEYS = ("source", "url", "package", "version")


class LockError(RuntimeError):
    """The lock file cannot be read."""


def asset_entries(assets: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The asset specs of a config's `assets` section (its settings, e.g. `require_pins`, left out)."""
    return {name: spec for name, spec in assets.items() if name not in OPTION_KEYS}


def identity(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What an asset is fetched from: a recorded hash holds only for the same source."""
    return {key: spec[key] for key in IDENTITY_KEYS if spec.get(key) is not None}


def read_lock(path: str | Path = LOCK_PATH) -> dict[str, dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise LockError(f"{path}: not valid JSON ({err}); delete it to record the hashes anew") from None
    if not isinstance(entries, dict):
        raise LockError(f"{path}: expected a JSON object of asset entries; delete it to record the hashes anew")
    return entries


def locked_sha256(name: str, spec: Mapping[str, Any], path: str | Path = LOCK_PATH) -> str | None:
    """The recorded hash of asset `name`, if recorded for the source `spec` names (else None)."""
    entry = read_lock(path).get(name)
    if not entry or entry.get("fetched_from") != identity(spec):
        return None
    return entry.get("sha256")


@contextlib.contextmanager
def _guard(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".guard"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record(name: str, spec: Mapping[str, Any], sha256: str, path: str | Path = LOCK_PATH) -> None:
    """Record (or replace) the entry of asset `name`."""
    path = Path(path)
    with _guard(path):
        entries = read_lock(path)
        entries[name] = {"sha256": sha256, "fetched_from": identity(spec)}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")


def unpinned(assets: Mapping[str, Any]) -> list[str]:
    """Asset keys without a `sha256` in the config, sorted."""
    return sorted(name for name, spec in asset_entries(assets).items() if not spec.get("sha256"))


def check_pins(assets: Mapping[str, Any]) -> None:
    """With `assets.require_pins: true`, an asset without a pinned sha256 is a config error."""
    missing = unpinned(assets)
    if assets.get("require_pins") and missing:
        from taxvlm.grid import ConfigError

        fields = ", ".join(f"assets.{name}.sha256" for name in missing)
        raise ConfigError(
            f"assets.require_pins is true but these assets have no pinned hash: {fields}. Pin each (the hash "
            f"recorded in {LOCK_PATH} by an earlier run, once checked, may be pasted), or set "
            "assets.require_pins: false to record hashes on first download."
        )


def unpinned_report(assets: Mapping[str, Any], path: str | Path = LOCK_PATH) -> str:
    """The warning about unpinned assets (empty when every asset is pinned)."""
    missing = unpinned(assets)
    if not missing:
        return ""
    try:
        entries = read_lock(path)
    except LockError as err:
        return f"warning: {err}"
    specs = asset_entries(assets)
    lines = [
        f"warning: {len(missing)} asset(s) without a pinned sha256 in the config; the first download's hash is "
        f"recorded in {path} and later downloads are verified against it (assets.require_pins: true makes "
        "this an error):"
    ]
    for name in missing:
        entry = entries.get(name)
        if entry and entry.get("fetched_from") == identity(specs[name]):
            lines.append(f"  {name}: recorded sha256 {entry['sha256']} (paste into assets.{name}.sha256 to pin)")
        else:
            lines.append(f"  {name}: not downloaded yet (its hash is recorded on first download)")
    return "\n".join(lines)
