"""Where a loaded model came from, for train_config.json and the feature cache's metadata.

Its own module so that the loaders depend on this record's format only, not on the code that fetches
models (`taxvlm.assets.hub`): editing the fetcher must not rerun every job that loads a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taxvlm.io import read_json

HUB_RECORD = "hub.json"  # written by taxvlm.assets.hub into each fetched folder


def loaded_from(weights_dir: Path) -> dict[str, Any]:
    """A local folder, plus its hub record (id, requested revision, commit) when it was fetched."""
    record = Path(weights_dir) / HUB_RECORD
    hub = read_json(record) if record.exists() else {}
    return {"weights_dir": str(weights_dir), **{k: v for k, v in hub.items() if k != "files"}}
