"""A private copy of the workflow for tests that run Snakemake, so they never touch the checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "data", "envs", "src", ".test", "profiles", "pyproject.toml"]


def copy_workflow(dest: Path) -> Path:
    """Copy what a run needs; links stay links (workflow/scripts/taxvlm points into src/)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    return dest
