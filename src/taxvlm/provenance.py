"""Where a results document came from: the fingerprint of the resolved config and the code version.

`docs/default-results.md` records both (`make docs`), and a test recomputes the fingerprint of the
committed default config, so a document whose numbers no longer match the config fails the suite
instead of quietly going stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from typing import Any

from taxvlm.io import write_json

FINGERPRINT_LINE = "Resolved config sha256: "


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """sha256 of the validated config (schema defaults filled), keys sorted: the same config, written
    in any order or with its defaults left out, has the same fingerprint."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def code_version(repo: str | os.PathLike[str] = ".") -> str:
    """`git describe --always --dirty` of the repository, or `unknown` outside a git checkout."""
    try:
        described = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return described.stdout.strip()


def write_provenance(fingerprint: str, repo: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    write_json({"config_sha256": fingerprint, "code_version": code_version(repo)}, path)
