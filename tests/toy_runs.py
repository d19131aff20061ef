"""The toy training data of the fused, packed and compiled training tests: two concepts whose images'
features separate them, so a projector learns the leaf questions in a few steps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

CONCEPTS = ["cat", "owl"]
# Their training settings (the rest from the schema's defaults): a pooled 16-d feature through two
# prefix tokens, batches of 8, a rate that learns the toy in a couple of epochs.
TOY_TRAINING = {"prefix_tokens": 2, "lr": 1e-2, "warmup_fraction": 0.1, "batch_size": 8, "val_every": 1}
TOY_ENCODER = {"source": "timm", "features": "pooled"}


def separable_toy(root: Path, n_images: int) -> pd.DataFrame:
    """Write `root/f.pt` (pooled 16-d features of `n_images` images, the two concepts alternating)
    and return the leaf question rows: every image asked about both concepts."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(2, 16, generator=g)[torch.arange(n_images) % 2]
    pooled = centres * 2 + 0.3 * torch.randn(n_images, 16, generator=g)
    image_ids = [f"img{i:02d}" for i in range(n_images)]
    torch.save({"image_ids": image_ids, "tokens": pooled[:, None].half(), "pooled": pooled.half()}, root / "f.pt")
    return pd.DataFrame(
        {
            "row_id": f"{image}:{name}", "image_id": image, "image_concept": (leaf := CONCEPTS[i % 2]),
            "question_id": f"{leaf}:leaf:{leaf}:{'Yes' if name == leaf else 'No'}", "leaf": leaf, "kind": "leaf",
            "asked": name, "answer": "Yes" if name == leaf else "No", "text": f"Is there a {name} in this image?",
        }
        for i, image in enumerate(image_ids)
        for name in CONCEPTS
    )  # fmt: skip
