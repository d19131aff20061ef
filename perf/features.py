"""Throughput of the pipeline's feature step (`taxvlm.features.extract_features`) per batch size.

The step runs once per encoder, so it is not part of the per-run comparisons in `run.py`; this sizes
`compute.feature_batch_size` / `feature_threads` and the step's share of a grid. Synthetic JPEGs
(noise, 480 px, decoded and preprocessed as real images are) go through a DINOv2 of the paper's
ViT-L/14 shape (`--encoder dinov2_l`, random weights) or DINOv2-S; bf16 autocast on a GPU, as the
pipeline runs it. The rate printed is the step's own loop (decode → preprocess → encode → fp16 cache),
model loading excluded.

Run: `.venv/bin/python perf/features.py [--device cuda] [--encoder dinov2_l] [--images 2048]
[--batch-sizes 32 128] [--workers 8]`.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import pandas as pd
import torch

from harness import machine
from workload import DINO_ENCODER, DINO_L, DINO_S, encoder_spec, noise_images
from taxvlm.assets.tiny import build_tiny_dinov2
from taxvlm.features import extract_features
from taxvlm.io import write_tsv

ENCODERS = {"dinov2_s": DINO_S, "dinov2_l": DINO_L}


class _Rate(logging.Handler):
    """Keeps the images/s that `extract_features` logs for its loop."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "images/s" in record.msg:
            self.rates.append(float(record.args[2]))


def synthetic_images(root: Path, n: int, size: int = 480) -> Path:
    """`n` noise JPEGs and the `images.tsv` (in `root`) that lists them."""
    paths = noise_images(n, size, "jpg")
    table = pd.DataFrame({"image_id": [f"c/{i}" for i in range(n)], "concept": "c", "path": paths, "split": "train"})
    write_tsv(table, root / "images.tsv")
    return root / "images.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--encoder", default="dinov2_l", choices=sorted(ENCODERS))
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers (decode + preprocess)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="taxvlm-bench-features-"))
    images_tsv = synthetic_images(root, args.images)
    shape = ENCODERS[args.encoder]
    build_tiny_dinov2(root / "encoder", shape)
    rate = _Rate()
    logging.getLogger("taxvlm.features").addHandler(rate)
    logging.getLogger("taxvlm.features").setLevel(logging.INFO)
    spec = encoder_spec({**DINO_ENCODER, "image_size": shape["image_size"]})
    rows = []
    for batch_size in args.batch_sizes:
        extract_features(spec, root / "encoder", images_tsv, root / f"features_{batch_size}.pt", batch_size,
                         args.device, args.workers)  # fmt: skip
        rows.append(f"| {batch_size} | {rate.rates[-1]:,.0f} |")
    print(f"# feature extraction: {args.encoder} shape (random weights), {args.images} synthetic 480 px JPEGs, "
          f"{args.workers} loader workers, {machine(torch.device(args.device))}\n")  # fmt: skip
    print("| batch size | images/s |\n|---|---|\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
