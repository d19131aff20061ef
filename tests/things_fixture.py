"""A THINGS-format fixture (issue 30): password-protected zip archives in THINGS's layout (images under
`object_images/<concept>/`, one archive holding a further encrypted zip) for every leaf of the paper's
pair table, served over local HTTP without hashes, and the overlay that runs `config/things.yaml` on
them with the `.test` tiny models. Used by tests/test_things_fixture.py (the whole grid, locally) and
tests/test_operations.py (runs of it through profiles/slurm)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "things4all"  # THINGS's public password, as config/things.yaml gives it
IMAGES_PER_LEAF = 3  # THINGS has 12 or more; the split needs several views per concept
MAX_CONCEPTS = 16  # of the paper's 1,222 leaves: every leaf needs its folder, the run samples these


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


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[str]:
    """`folder` over HTTP on a free local port, for the length of the block: its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def overlay(base_url: str, archives: list[Path], gpus_per_job: int = 0) -> dict:
    """After config/things.yaml: the fixture's archives (unpinned, as THINGS's are), `.test`'s tiny
    models and training length, one seed, and one run of each kind the paper grid has."""
    tiny = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    runs = {"encoders": ["tiny_vit"], "lms": ["tiny_llama"], "seeds": [7]}
    assets = {f"things_fixture_{i}": {"source": "url", "url": f"{base_url}/{path.name}", "sha256": None}
              for i, path in enumerate(archives)}  # fmt: skip
    return {
        "assets": assets,
        "dataset": {"max_concepts": MAX_CONCEPTS, "things": {"images_assets": list(assets)}},
        "models": tiny["models"],
        "tuning": tiny["tuning"],
        "encoders": tiny["encoders"],
        "lms": tiny["lms"],
        "training": {key: tiny["training"][key] for key in ("epochs", "batch_size", "checkpoint_every")},
        "compute": {"gpus_per_job": gpus_per_job, "feature_threads": 1, "train_threads": 1},
        "analysis": {"textprobe": {"lms": ["tiny_llama"]}},
        "probe": {"runs": {"conditions": ["full"], "shuffles": ["original", "across"], "seeds": [7]}},
        "experiments": [
            runs | {"inits": ["pretrained", "random"], "conditions": ["systematic2", "full"], "shuffles": ["original"]},
            runs | {"inits": ["pretrained"], "conditions": ["random50", "full"], "shuffles": ["across"]},
        ],
    }
