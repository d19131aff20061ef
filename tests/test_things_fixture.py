"""The paper grid's own input path, end to end, on the THINGS-format fixture (tests/things_fixture.py):
`config/things.yaml` runs as shipped, with the real THINGSplus and paper tables of `data/thingsplus/`,
and one overlay that swaps in the `.test` tiny models, the fixture's URLs and a grid cut to one run per
kind, so every rule the paper grid plans runs here except `prefetch_model` (the tiny models are local;
its tests: tests/test_assets_hub.py). The same fixture runs through profiles/slurm in
tests/test_operations.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from things_fixture import IMAGES_PER_LEAF, MAX_CONCEPTS, overlay, paper_leaves, serving, write_archives
from workflow_copy import copy_workflow

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.skipif(shutil.which("zip") is None, reason="building THINGS-format archives needs Info-ZIP zip"),
]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[Path]]]:
    """(base URL, archive paths) of the fixture's archives, served for the test."""
    archives = write_archives(paper_leaves(), tmp_path / "served")
    with serving(tmp_path / "served") as base_url:
        yield base_url, archives


def snakemake(workdir: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True,
                            timeout=1800, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert result.returncode == 0, f"snakemake {' '.join(args)}:\n{result.stdout[-4000:]}\n{result.stderr[-12000:]}"
    return result.stdout + result.stderr


def planned_rules(output: str) -> set[str]:
    return set(re.findall(r"^(?:local)?rule (\w+):", output, re.M))


def test_things_grid_runs_end_to_end_on_things_format_archives(
    served: tuple[str, list[Path]], tmp_path: Path
) -> None:
    base_url, archives = served
    workdir = copy_workflow(tmp_path / "workflow")
    paper_grid = planned_rules(snakemake(workdir, "-n", "--cores", "1", "--configfile", "config/things.yaml"))

    # The paper's systematic lists name categories of all 1,222 leaves; the sample holds only some, so
    # its systematic condition lists two of those (the rule is the same)
    fixture = overlay(base_url, archives)
    (workdir / "fixture.yaml").write_text(yaml.safe_dump(fixture, sort_keys=False))
    output = snakemake(workdir, "--cores", "2", "--configfile", "config/things.yaml", "fixture.yaml",
                       "--", "results/data/pairs.tsv")  # fmt: skip
    sampled = sorted(set(pd.read_csv(workdir / "results/data/pairs.tsv", sep="\t").hypernym))
    fixture["conditions"] = {"systematic_categories": {"2": sampled[:2]}}
    (workdir / "fixture.yaml").write_text(yaml.safe_dump(fixture, sort_keys=False))
    output += snakemake(workdir, "--cores", "2", "--configfile", "config/things.yaml", "fixture.yaml")

    assert paper_grid - planned_rules(output) == {"prefetch_model"}, "a rule of the paper grid did not run"
    assert "without a pinned sha256" in output  # THINGS's archives have no hash: warned, not refused
    lock = json.loads((workdir / "resources/assets.lock").read_text())
    assert set(lock) == {"things_fixture_0", "things_fixture_1"}, lock
    concepts = pd.read_csv(workdir / "results/data/concepts.tsv", sep="\t")
    assert len(concepts) == MAX_CONCEPTS and set(concepts.concept) <= set(paper_leaves())
    images = pd.read_csv(workdir / "results/data/images.tsv", sep="\t")
    assert len(images) == MAX_CONCEPTS * IMAGES_PER_LEAF
    assert "Nothing to be done" in snakemake(workdir, "-n", "--cores", "1", "--configfile", "config/things.yaml",
                                             "fixture.yaml")  # fmt: skip
