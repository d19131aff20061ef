"""The paper grid's own input path, end to end, on a THINGS-format fixture (issue 30): password-protected
zip archives in THINGS's layout (images under `object_images/<concept>/`, one archive holding a further
encrypted zip), served over local HTTP without hashes, with the real THINGSplus and paper tables of
`data/thingsplus/`. `config/things.yaml` runs as shipped, with one overlay that swaps in the `.test`
tiny models, the fixture's URLs and a grid cut to one run per kind, so every rule the paper grid
plans runs here except `prefetch_model` (the tiny models are local; its tests: tests/test_assets_hub.py).
"""

from __future__ import annotations

import functools
import json
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from workflow_copy import copy_workflow

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "things4all"  # THINGS's public password, as config/things.yaml gives it
IMAGES_PER_LEAF = 3  # THINGS has 12 or more; the split needs several views per concept
MAX_CONCEPTS = 16  # of the paper's 1,222 leaves: every leaf needs its folder, the run samples these

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.skipif(shutil.which("zip") is None, reason="building THINGS-format archives needs Info-ZIP zip"),
]


def paper_leaves() -> list[str]:
    """Every leaf of the paper's pair table: `leaf_set: xu2026` requires a folder for each."""
    return sorted(set(pd.read_csv(REPO / "data/thingsplus/xu2026_leaf_hypernym_pairs.tsv", sep="\t").concept))


def write_archives(concepts: list[str], out: Path) -> list[Path]:
    """Two encrypted archives as THINGS ships them: the first half of the concepts directly under
    `object_images/`, the second inside an encrypted zip that the outer archive holds (the run's
    sample draws from both)."""
    rng = np.random.default_rng(0)
    tree = out / "tree"
    for concept in concepts:
        (tree / "object_images" / concept).mkdir(parents=True)
        for view in range(IMAGES_PER_LEAF):
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tree / "object_images" / concept / f"{concept}_{view + 1:02d}s.jpg")
    half = len(concepts) // 2
    zip_ = functools.partial(subprocess.run, check=True, cwd=tree)
    first, second = out / "object_images_A-C.zip", out / "object_images_D-K.zip"
    zip_(["zip", "-qr", "-P", PASSWORD, str(first), *(f"object_images/{c}" for c in concepts[:half])])
    zip_(["zip", "-qr", "-P", PASSWORD, "inner.zip", *(f"object_images/{c}" for c in concepts[half:])])
    zip_(["zip", "-q", "-P", PASSWORD, str(second), "inner.zip"])
    return [first, second]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        """No line per request in the test's output."""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[Path]]]:
    """The archives over HTTP on a free local port: (base URL, archive paths)."""
    archives = write_archives(paper_leaves(), tmp_path / "served")
    handler = functools.partial(QuietHandler, directory=str(tmp_path / "served"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", archives
    server.shutdown()


def overlay(base_url: str, archives: list[Path]) -> dict:
    """After config/things.yaml: the fixture's archives (unpinned, as THINGS's are), `.test`'s tiny
    models and training length, one seed, and one run of each kind the paper grid has."""
    tiny = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    runs = {"encoders": ["tiny_vit"], "lms": ["tiny_llama"], "seeds": [7]}
    assets = {f"things_fixture_{i}": {"source": "url", "url": f"{base_url}/{path.name}", "sha256": None}
              for i, path in enumerate(archives)}  # fmt: skip
    return {
        "assets": assets,
        "dataset": {"max_concepts": MAX_CONCEPTS, "things": {"images_assets": list(assets)}},
        "encoders": tiny["encoders"],
        "lms": tiny["lms"],
        "training": {key: tiny["training"][key] for key in ("epochs", "batch_size", "checkpoint_every")},
        "compute": {"gpus_per_job": 0, "feature_threads": 1, "train_threads": 1},
        "analysis": {"textprobe": {"lms": ["tiny_llama"]}},
        "probe": {"runs": {"conditions": ["full"], "shuffles": ["original", "across"], "seeds": [7]}},
        "experiments": [
            runs | {"inits": ["pretrained", "random"], "conditions": ["systematic2", "full"], "shuffles": ["original"]},
            runs | {"inits": ["pretrained"], "conditions": ["random50", "full"], "shuffles": ["across"]},
        ],
    }


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
